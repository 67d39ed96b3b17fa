"""Training: config, cached-feature data, the engine (single process or torchrun + DDP)."""
