"""The maximum-likelihood surrogate of an energy-based model trained with sampled negatives.

For ``p_theta(x) = exp(-E_theta(x)) / Z(theta)``, ``d log Z = -E_p[dE]``, so the gradient of the
mean negative log-likelihood of data ``x+_i`` is

    d(-mean_i log p(x+_i)) = mean_i dE(x+_i) - E_{x ~ p}[dE(x)],

and with model samples ``x-_j`` (Langevin chains started from noise or from a replay buffer) in
place of the expectation it is the gradient of

    L = mean_i E(x+_i) - mean_j E(sg(x-_j)) + alpha (mean_i E(x+_i)^2 + mean_j E(sg(x-_j))^2)

(``sg`` = stop_gradient: the samples are held fixed).

The last term (Du & Mordatch 2019, "Implicit generation and modeling with energy-based models")
keeps the energies near zero: the likelihood fixes them only up to a constant, and without it the
two phases can drift together until floats overflow. This is the loss of the deep EBMs of
:mod:`jgen.models.ebm` (short-run chains: Nijkamp et al. 2019; persistent chains: Du & Mordatch
2019), of JEM's generative term (Grathwohl et al. 2020) and of exponential tilting; contrastive
divergence for RBMs (:mod:`jgen.losses.contrastive_divergence`) is the same surrogate with free
energies and Gibbs negatives.
"""

import jax
import jax.numpy as jnp

from jgen.checks import check_positive
from jgen.types import Array


def _check_energies(name: str, e) -> Array:
    e = jnp.asarray(e)
    if e.ndim != 1 or e.shape[0] == 0 or not jnp.issubdtype(e.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a non-empty float vector (n,) of per-example energies; got "
            f"{e.dtype} array of shape {e.shape}"
        )
    return e


def contrastive_loss(
    energy_data: Array, energy_model: Array, *, l2_weight: float = 0.0
) -> tuple[Array, dict]:
    """``L = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)``.

    The caller computes ``energy_model`` on samples it has already stopped gradients through
    (the sampler's output); this function differentiates only through the energies.

    Args:
      energy_data: ``(n,)`` energies of data examples.
      energy_model: ``(m,)`` energies of model samples (``m`` may differ from ``n``).
      l2_weight: ``alpha >= 0``, the weight of the energy-magnitude penalty.

    Returns:
      ``(loss, aux)``: the scalar surrogate and ``energy_data`` / ``energy_model`` (means),
      ``energy_gap`` (their difference, the contrastive term) and ``energy_l2`` (the penalty
      before weighting).

    Raises:
      ValueError: for energies that are not non-empty float vectors, or a negative
        ``l2_weight``.
    """
    e_data = _check_energies("energy_data", energy_data)
    e_model = _check_energies("energy_model", energy_model)
    check_positive("l2_weight", l2_weight, allow_zero=True)
    gap = jnp.mean(e_data) - jnp.mean(e_model)
    l2 = jnp.mean(jnp.square(e_data)) + jnp.mean(jnp.square(e_model))
    aux = {
        "energy_data": jnp.mean(e_data),
        "energy_model": jnp.mean(e_model),
        "energy_gap": gap,
        "energy_l2": l2,
    }
    return gap + l2_weight * l2, jax.tree.map(jax.lax.stop_gradient, aux)
