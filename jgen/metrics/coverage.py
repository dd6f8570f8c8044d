"""Mode coverage of samples from a mixture of isotropic Gaussians with known centres.

The metrics of the mode-collapse benchmarks on the 2D ``ring8`` and ``grid25`` toys (Unrolled
GAN, Metz et al. 2017; VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): every sample is
assigned to its nearest centre and is *high quality* when it lies within ``num_stds = 3``
standard deviations of it; a mode is *covered* when it holds enough high-quality samples; and the
histogram of high-quality samples over modes is compared with the uniform one by the *reverse*
KL divergence ``KL(q || uniform)`` (the generated distribution first, as PacGAN reports it).
``jgen.data.toy2d.mixture_modes`` gives the centres and std of the toys.
"""

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlog1py

from jgen.checks import check_positive
from jgen.types import Array

DEFAULT_MIN_SHARE = 0.2
"""Default share of a mode's expected sample count ``n / K`` that it must receive to count as
covered: PacGAN's threshold of 20 high-quality samples out of 2500 on ``grid25`` (1/5 of the
100 a perfect generator puts on each of the 25 modes)."""


def mode_coverage(
    samples: Array,
    centres: Array,
    std: float,
    *,
    num_stds: float = 3.0,
    min_share: float = DEFAULT_MIN_SHARE,
) -> dict[str, Array]:
    """Mode coverage, share of high-quality samples and reverse KL over modes.

    For samples ``x_1..x_n`` and centres ``μ_1..μ_K`` of a mixture whose components share the
    isotropic std ``σ``: ``k(i) = argmin_k |x_i - μ_k|``; sample ``i`` is high quality when
    ``|x_i - μ_k(i)| <= num_stds · σ`` (VEEGAN, PacGAN: 3 stds), and

    - ``counts_k = #{i high quality : k(i) = k}``;
    - ``high_quality = Σ_k counts_k / n``;
    - ``modes_covered = #{k : counts_k >= max(1, min_share · n / K)}``. With the default
      ``min_share = 0.2`` a mode needs 1/5 of the samples it would get from the true mixture:
      20 of 2500 on ``grid25``, PacGAN's rule (Lin et al. 2018). ``min_share = 0`` counts
      every mode with at least one high-quality sample (the rule of PacGAN's released code);
    - ``reverse_kl = KL(q || u) = Σ_k q_k log(K q_k)`` with ``q_k = counts_k / Σ_j counts_j`` the
      distribution of the high-quality samples over modes and ``u`` the uniform distribution of
      the true mixture, ``0 log 0 = 0``. It is 0 for a perfectly balanced histogram and
      ``log(K / m)`` for samples spread evenly over only ``m`` modes; ``NaN`` when no sample is
      high quality. (PacGAN calls it reverse KL: the generated distribution comes first.)

    A sample equidistant from two centres goes to the lower index. Works under ``jit``.

    Args:
      samples: ``(n, D)`` samples (``D = 2`` for the toys), ``n >= 1``.
      centres: ``(K, D)`` mode centres, e.g. from ``jgen.data.toy2d.mixture_modes``.
      std: ``σ > 0``, the std of every component.
      num_stds: ``> 0``, the radius of a high-quality sample in units of ``σ``.
      min_share: ``>= 0``, the share of ``n / K`` high-quality samples a covered mode needs.

    Returns:
      A dict with ``high_quality`` (scalar), ``modes_covered`` (int scalar), ``counts``
      (``(K,)`` ints) and ``reverse_kl`` (scalar, nats).

    Raises:
      ValueError: if ``samples`` or ``centres`` is not a non-empty matrix, their dimensions
        differ, or ``std``, ``num_stds`` or ``min_share`` is out of range.
    """
    for name, value, shown in (("samples", samples, "(n, D)"), ("centres", centres, "(K, D)")):
        shape = tuple(np.shape(value))
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"{name} must have shape {shown} with sizes >= 1; got shape {shape}")
    if np.shape(samples)[1] != np.shape(centres)[1]:
        raise ValueError(
            f"samples and centres must have the same dimension D; got samples of shape "
            f"{np.shape(samples)} and centres of shape {np.shape(centres)}"
        )
    check_positive("std", std)
    check_positive("num_stds", num_stds)
    check_positive("min_share", min_share, allow_zero=True)

    samples = jnp.asarray(samples)
    centres = jnp.asarray(centres, samples.dtype)
    n, k = samples.shape[0], centres.shape[0]
    # Differences rather than |x|² + |μ|² - 2x·μ (jgen.metrics.mmd.squared_distances): the
    # radius (3 · 0.02)² on ring8 is ~1e-3 of |x|², where the expanded square cancels in float32
    # and matmul precision on accelerators would decide which samples count.
    d2 = jnp.sum((samples[:, None, :] - centres[None, :, :]) ** 2, axis=-1)  # (n, K)
    nearest = jnp.argmin(d2, axis=1)
    good = jnp.min(d2, axis=1) <= (num_stds * std) ** 2
    counts = jnp.zeros(k, jnp.int32).at[nearest].add(good.astype(jnp.int32))
    total = jnp.sum(counts)
    # KL(q || u) = (1/K) Σ_k [(1 + r_k) log(1 + r_k) - r_k] with r_k = K q_k - 1 (the r_k sum to
    # 0): every term is >= 0 and ~r²/2, so a near-uniform histogram's KL of ~1e-4 does not come
    # out of the cancellation of Σ q log q against log K (a 1e-3 relative error in float32).
    r = (k * counts - total) / total
    return {
        "high_quality": total / n,
        "modes_covered": jnp.sum(counts >= jnp.maximum(1.0, min_share * n / k)),
        "counts": counts,
        "reverse_kl": jnp.mean(xlog1py(1.0 + r, r) - r),
    }
