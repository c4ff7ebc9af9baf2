"""Training: Trainer subclass, data loading, LoRA, accelerate configs."""
