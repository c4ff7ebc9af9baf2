"""Hugging Face Space: the VideoITG web demo. The app itself is `videoitg.web` in the package (also served locally by
`videoitg demo --web`); this file only launches it.

Space variables (Settings -> Variables and secrets):
    VIDEOITG_MODEL         selector model folder or Hub id (default: the demo model embedded in the package)
    VIDEOITG_ANSWER_MODEL  an answering Video-LLM (LLaVA-OneVision, Qwen2-VL, ...) to compare the answers from the
                           selected and from uniform frames; off by default (a free CPU Space is too small for one)
"""

import os

from videoitg.web import launch

if __name__ == "__main__":
    launch(
        model=os.environ.get("VIDEOITG_MODEL") or None,
        answer_model=os.environ.get("VIDEOITG_ANSWER_MODEL") or None,
    )
