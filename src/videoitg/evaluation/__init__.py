"""Evaluation: frame-selection metrics, the benchmark runner (`videoitg eval`) and the synthetic benchmark
generator (`videoitg synth`)."""
