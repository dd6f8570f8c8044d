"""The scikit-learn digits: 1797 images of 8x8 pixels with values 0..16, shipped with sklearn.

Split, in the order ``load_digits()`` returns them: the first 1000 images are ``train``, the next
350 ``validation``, the last 447 ``test``. Variants:

* ``binary``: pixel >= 8 -> 1, else 0; log-likelihoods in nats per image.
* ``continuous``: uniform dequantization ``(x + u) / 17`` with ``u ~ U[0, 1)``, values in [0, 1).
  A density on [0, 1)^64 is compared with a discrete model on {0..16}^64 through
  ``jgen.losses.likelihood.dequantized_nll(nll, 64, 17)``.
* ``clean``: ``x / 16`` without noise, the images for FID-like metrics.
* ``raw``: the integer pixel values 0..16.
"""

import numpy as np
from sklearn.datasets import load_digits

from jgen.checks import check_choice

IMAGE_SHAPE = (8, 8)
NUM_LEVELS = 17
SPLITS = {"train": slice(0, 1000), "validation": slice(1000, 1350), "test": slice(1350, 1797)}
VARIANTS = ("binary", "continuous", "clean", "raw")


def load(variant: str, split: str, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of the digits in one variant.

    Args:
      variant: ``binary``, ``continuous``, ``clean`` or ``raw`` (see the module docstring).
      split: ``train`` (1000 images), ``validation`` (350) or ``test`` (447).
      seed: seeds the dequantization noise of the ``continuous`` variant; the noise is fixed per
        (seed, split) so evaluation numbers are reproducible.

    Returns:
      ``(images, labels)``: images ``(n, 8, 8)`` float32 (uint8 for ``raw``), labels ``(n,)`` int32.
    """
    check_choice("variant", variant, VARIANTS)
    check_choice("split", split, SPLITS)
    digits = load_digits()
    raw = digits.images[SPLITS[split]].astype(np.uint8)
    labels = digits.target[SPLITS[split]].astype(np.int32)
    if variant == "raw":
        return raw, labels
    if variant == "binary":
        return (raw >= 8).astype(np.float32), labels
    if variant == "clean":
        return (raw / 16.0).astype(np.float32), labels
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    noise = rng.uniform(0.0, 1.0, size=raw.shape)
    return ((raw + noise) / NUM_LEVELS).astype(np.float32), labels
