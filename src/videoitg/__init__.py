"""videoitg: instruction-guided frame selection for Video-LLMs."""
