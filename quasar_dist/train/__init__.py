"""Training temperature-guided models with DeepSpeed (CPU gloo or GPU NCCL)."""
