"""Full-reference image quality, per image: peak signal-to-noise ratio and structural similarity.

Both compare a reconstruction ``x`` with its reference ``y`` (of a VAE, a VQ-VAE, an inpainting
model) and take batches of grey ``(n, H, W)`` or colour ``(n, H, W, C)`` images.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_positive
from jgen.types import Array


def _as_images(x, y) -> tuple[Array, Array]:
    """Checks a pair of equal batches of images and casts them to one floating dtype."""
    for name, v in (("x", x), ("y", y)):
        if np.ndim(v) not in (3, 4):
            raise ValueError(
                f"{name} must have shape (n, H, W) or (n, H, W, C); got shape {np.shape(v)}"
            )
    if np.shape(x) != np.shape(y):
        raise ValueError(f"x and y must have the same shape; got {np.shape(x)} and {np.shape(y)}")
    # Integer pixels (uint8) would wrap around in differences and squares.
    dtype = jnp.result_type(x, y, jnp.float32)
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def psnr(x: Array, y: Array, *, data_range: float) -> Array:
    """Peak signal-to-noise ratio of each image, in decibels.

    ``PSNR = 10 log10(R^2 / MSE)`` with ``MSE = mean over pixels (and channels) of (x - y)^2``
    and ``R`` the dynamic range of the pixel values (1 for images in [0, 1], 255 for uint8).
    Identical images have ``PSNR = inf``.

    Args:
      x: images ``(n, H, W)`` or ``(n, H, W, C)``.
      y: reference images of the same shape.
      data_range: ``R > 0``.

    Returns:
      ``(n,)`` PSNR values.

    Raises:
      ValueError: if the shapes differ or are not images, or if ``data_range`` is not positive.
    """
    x, y = _as_images(x, y)
    check_positive("data_range", data_range)
    mse = jnp.mean((x - y) ** 2, axis=tuple(range(1, x.ndim)))
    return 10.0 * jnp.log10(data_range**2 / mse)


def _window_size(sigma: float, win_size: int | None) -> int:
    if win_size is None:
        # scikit-image's gaussian_weights window: scipy.ndimage's radius for truncate = 3.5,
        # 11 taps at the default sigma = 1.5 as in Wang et al. 2004.
        return 2 * int(3.5 * sigma + 0.5) + 1
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3:
        raise ValueError(f"win_size must be an odd integer >= 3; got {win_size!r}")
    if win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3; got {win_size!r}")
    return win_size


def _gaussian_filter_valid(images: Array, weights: Array) -> Array:
    """Separable weighted mean over every window that fits: ``(b, H, W) -> (b, H-w+1, W-w+1)``."""
    z = images[:, None]  # one input feature: (b, 1, H, W) in NCHW
    for kernel in (weights[:, None], weights[None, :]):  # along H, then along W
        z = jax.lax.conv_general_dilated(
            z,
            kernel[None, None].astype(z.dtype),
            window_strides=(1, 1),
            padding="VALID",
            # Accelerators default to reduced-precision convolutions; SSIM subtracts products of
            # these averages, so it needs the full precision of the input dtype.
            precision=jax.lax.Precision.HIGHEST,
        )
    return z[:, 0]


def ssim(
    x: Array,
    y: Array,
    *,
    data_range: float,
    sigma: float = 1.5,
    win_size: int | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Array:
    """Mean structural similarity of each image (Wang, Bovik, Sheikh & Simoncelli 2004, "Image
    quality assessment: from error visibility to structural similarity", IEEE TIP 13).

    In every ``win_size x win_size`` window that lies inside the image, with Gaussian weights
    ``w`` (standard deviation ``sigma``, normalised to sum 1), the weighted means ``mu``, population
    variances ``s^2`` and covariance ``s_xy`` give::

        SSIM = (2 mu_x mu_y + C1) (2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (s_x^2 + s_y^2 + C2)),

    with ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``. The result is the mean over the
    ``(H - win_size + 1) x (W - win_size + 1)`` window positions and over channels. With the
    default ``win_size`` this is exactly ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, use_sample_covariance=False)``, which filters the padded image and
    crops the same border. An explicit ``win_size`` truncates the Gaussian to ``win_size`` taps
    (as Wang et al.'s reference code does); scikit-image instead keeps its own filter width and
    uses ``win_size`` only for the crop, so the two then differ.

    Args:
      x: images ``(n, H, W)`` or ``(n, H, W, C)``.
      y: reference images of the same shape.
      data_range: ``R > 0``, the dynamic range of the pixel values.
      sigma: standard deviation of the Gaussian window, in pixels.
      win_size: odd window side; defaults to ``2 int(3.5 sigma + 0.5) + 1`` (11 for
        ``sigma = 1.5``; ``sigma < 1`` gives 7, small enough for 8x8 images).
      k1: stabilises the luminance term.
      k2: stabilises the contrast-structure term.

    Returns:
      ``(n,)`` mean SSIM values; ``SSIM(x, x) = 1``.

    Raises:
      ValueError: if the shapes differ or are not images, if an image is smaller than the
        window, or if an argument is out of range.
    """
    x, y = _as_images(x, y)
    check_positive("data_range", data_range)
    check_positive("sigma", sigma)
    check_positive("k1", k1, allow_zero=True)
    check_positive("k2", k2, allow_zero=True)
    size = _window_size(sigma, win_size)
    height, width = x.shape[1:3]
    side = min(height, width)
    if side < size:
        # The default window fits when int(3.5 sigma + 0.5) <= (side - 1) // 2.
        largest_sigma = ((side - 1) // 2 + 0.5) / 3.5
        raise ValueError(
            f"images of {height}x{width} pixels are smaller than the {size}x{size} SSIM window "
            f"(win_size={win_size}, sigma={sigma}); pass sigma < {largest_sigma:.4g} or an "
            f"explicit odd win_size <= {side}"
        )

    offsets = np.arange(size) - size // 2
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights = jnp.asarray(weights / weights.sum(), x.dtype)

    if x.ndim == 3:
        x, y = x[..., None], y[..., None]
    n, _, _, channels = x.shape
    # Filter the five maps of every image and channel in one batched call: (5, n, C, H, W).
    maps = jnp.stack([x, y, x * x, y * y, x * y])
    maps = jnp.moveaxis(maps, -1, 2).reshape(5 * n * channels, height, width)
    mu_x, mu_y, xx, yy, xy = _gaussian_filter_valid(maps, weights).reshape(
        5, n, channels, height - size + 1, width - size + 1
    )
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return jnp.mean(ssim_map, axis=(1, 2, 3))
