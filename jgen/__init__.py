"""jgen: a functional JAX library of deep generative models."""

__version__ = "0.1.0"
