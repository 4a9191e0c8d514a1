"""Experiment trackers for executed stages: W&B, MLflow, or none (see `base`)."""
