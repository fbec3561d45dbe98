"""Training: hardware profiles and plans, sample order, augmentations, the trainer, checkpoints."""
