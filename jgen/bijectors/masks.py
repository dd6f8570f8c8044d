"""Binary masks for coupling layers on images (see ``jgen.bijectors.coupling``).

``coupling.parity_mask`` gives RealNVP's checkerboard; ``channel_mask`` gives the channel-wise
mask used after a squeeze (RealNVP) and in every Glow coupling, where one half of the channels
conditions the transformation of the other half.

Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP", section 3.4; Kingma &
Dhariwal 2018, "Glow", section 3.3.
"""

import numpy as np

from jgen.checks import check_choice, check_int


def channel_mask(num_channels: int, parity: int) -> np.ndarray:
    """Mask of shape ``(1, 1, C)`` (broadcasts to ``(H, W, C)``) with half the channels 1.

    ``parity = 0`` sets the first ``C // 2`` channels to 1, ``parity = 1`` is its complement (so
    alternating parities transform every channel).

    Args:
      num_channels: ``C >= 2``.
      parity: 0 or 1.
    """
    check_int("num_channels", num_channels, minimum=2)
    check_choice("parity", parity, (0, 1))
    first = np.arange(num_channels) < num_channels // 2
    mask = first if parity == 0 else ~first
    return mask.astype(np.float32).reshape(1, 1, num_channels)
