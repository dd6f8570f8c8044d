"""PSNR and SSIM per image against scikit-image, and SSIM with an explicit window against a
brute-force loop over window positions."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jgen.metrics.image_quality import psnr, ssim


def noisy_pair(seed, shape):
    """Random images in [0, 1] and a noisy copy, so SSIM lies well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    return x, np.clip(x + 0.15 * rng.normal(size=shape), 0.0, 1.0)


def skimage_ssim(x, y, sigma, colour, **kwargs):
    return np.array(
        [
            structural_similarity(
                a,
                b,
                gaussian_weights=True,
                sigma=sigma,
                use_sample_covariance=False,
                channel_axis=-1 if colour else None,
                **kwargs,
            )
            for a, b in zip(x, y, strict=True)
        ]
    )


@pytest.mark.parametrize(
    "shape, sigma",
    [
        ((3, 16, 16), 1.5),  # the 11x11 window of Wang et al.
        ((3, 16, 16, 3), 1.5),
        ((3, 16, 12), 1.2),  # non-square, 9x9 window
        ((3, 8, 8), 0.8),  # digits: 7x7 window
        ((3, 8, 8, 3), 0.5),  # 5x5 window
    ],
)
def test_ssim_matches_skimage(x64, shape, sigma):
    x, y = noisy_pair(0, shape)
    colour = len(shape) == 4
    expected = skimage_ssim(x, y, sigma, colour, data_range=1.0)
    assert np.all((0.05 < expected) & (expected < 0.99))  # a non-trivial comparison
    np.testing.assert_allclose(ssim(x, y, data_range=1.0, sigma=sigma), expected, rtol=0, atol=1e-6)
    # Other data_range and constants: scikit-image's K1, K2.
    expected = skimage_ssim(x, y, sigma, colour, data_range=2.0, K1=0.02, K2=0.05)
    got = ssim(x, y, data_range=2.0, sigma=sigma, k1=0.02, k2=0.05)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def brute_force_ssim(a, b, win_size, sigma, data_range, k1=0.01, k2=0.03):
    """Wang et al. 2004, Eq. 13 with weighted statistics, window by window (grey images)."""
    offsets = np.arange(win_size) - win_size // 2
    w1 = np.exp(-0.5 * (offsets / sigma) ** 2)
    w = np.outer(w1, w1) / w1.sum() ** 2
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    values = []
    for i in range(a.shape[0] - win_size + 1):
        for j in range(a.shape[1] - win_size + 1):
            pa, pb = a[i : i + win_size, j : j + win_size], b[i : i + win_size, j : j + win_size]
            ma, mb = np.sum(w * pa), np.sum(w * pb)
            va, vb = np.sum(w * (pa - ma) ** 2), np.sum(w * (pb - mb) ** 2)
            cov = np.sum(w * (pa - ma) * (pb - mb))
            values.append(
                (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    return np.mean(values)


def test_explicit_window_matches_brute_force(x64):
    x, y = noisy_pair(1, (2, 8, 10))
    for win_size, sigma in ((5, 1.5), (3, 1.0), (7, 0.8)):
        expected = [brute_force_ssim(a, b, win_size, sigma, 1.0) for a, b in zip(x, y, strict=True)]
        got = ssim(x, y, data_range=1.0, sigma=sigma, win_size=win_size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # When win_size is scikit-image's own for this sigma, it agrees with scikit-image too.
    expected = skimage_ssim(x, y, 0.8, False, data_range=1.0, win_size=7)
    np.testing.assert_allclose(
        ssim(x, y, data_range=1.0, sigma=0.8, win_size=7), expected, atol=1e-12
    )


@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 16, 16, 3), (3, 8, 8)])
def test_psnr_matches_skimage(x64, shape):
    x, y = noisy_pair(2, shape)
    for data_range in (1.0, 2.5):
        expected = [
            peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(x, y, strict=True)
        ]
        np.testing.assert_allclose(psnr(x, y, data_range=data_range), expected, rtol=0, atol=1e-6)


def test_uint8_images_do_not_wrap_around():
    x, y = noisy_pair(3, (2, 8, 8))
    x8, y8 = (np.round(255 * v).astype(np.uint8) for v in (x, y))
    expected = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x8, y8, strict=True)]
    np.testing.assert_allclose(psnr(x8, y8, data_range=255.0), expected, rtol=1e-5)
    expected = skimage_ssim(x8, y8, 0.8, False, data_range=255)
    np.testing.assert_allclose(ssim(x8, y8, data_range=255.0, sigma=0.8), expected, atol=1e-5)


def test_identical_images(x64):
    x, _ = noisy_pair(4, (3, 12, 12, 3))
    np.testing.assert_allclose(ssim(x, x, data_range=1.0), 1.0, rtol=1e-12)
    assert np.all(np.isposinf(psnr(x, x, data_range=1.0)))


def test_bad_arguments():
    x = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"x and y must have the same shape; got \(2, 8, 8\)"):
        psnr(x, np.zeros((2, 8, 9)), data_range=1.0)
    with pytest.raises(ValueError, match=r"x and y must have the same shape"):
        ssim(x, np.zeros((3, 8, 8)), data_range=1.0, sigma=0.5)
    with pytest.raises(ValueError, match=r"x must have shape \(n, H, W\) or \(n, H, W, C\)"):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)), data_range=1.0)
    with pytest.raises(ValueError, match="data_range must be finite and > 0; got 0"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match=r"8x8 pixels are smaller than the 11x11 SSIM window.*"):
        ssim(x, x, data_range=1.0)
    with pytest.raises(ValueError, match=r"sigma < 1 or an explicit odd win_size <= 8"):
        ssim(x, x, data_range=1.0, sigma=1.0)  # 2 int(4.0) + 1 = 9 taps
    with pytest.raises(ValueError, match=r"smaller than the 9x9 SSIM window \(win_size=9"):
        ssim(x, x, data_range=1.0, win_size=9)
    with pytest.raises(ValueError, match="win_size must be an odd integer >= 3; got 4"):
        ssim(x, x, data_range=1.0, win_size=4)
