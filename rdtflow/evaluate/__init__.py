"""Evaluation of checkpoints and the blind baseline on held-out episodes."""
