"""A small convolutional classifier for low-resolution images, returning its penultimate features
with the logits: the feature extractor of FID / KID / IS on small images, the classifier of JEM
and of classifier guidance."""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class ConvClassifier(nn.Module):
    """``x -> [Conv 3x3 (stride 1 first, then 2) -> act]* -> flatten -> Dense -> act = features
    -> Dense = logits``.

    Attributes:
      num_classes: number of logits.
      channels: channels of the convolutions; every one after the first halves the resolution.
      feature_size: width of the penultimate layer, the features.
      activation: the nonlinearity.
    """

    num_classes: int
    channels: Sequence[int] = (32, 64, 128)
    feature_size: int = 128
    activation: Callable[[jax.Array], jax.Array] = nn.gelu

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Args: ``x`` images ``(n, H, W, C)``. Returns ``(features (n, feature_size), logits
        (n, num_classes))``."""
        if x.ndim != 4:
            raise ValueError(f"x must be images of shape (n, H, W, C); got shape {x.shape}")
        for i, width in enumerate(self.channels):
            x = self.activation(nn.Conv(width, (3, 3), strides=1 if i == 0 else 2)(x))
        features = self.activation(nn.Dense(self.feature_size)(jnp.reshape(x, (x.shape[0], -1))))
        return features, nn.Dense(self.num_classes)(features)
