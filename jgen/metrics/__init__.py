"""Evaluation metrics for generative models: sample-based distances, likelihood estimates and
image-quality scores."""
