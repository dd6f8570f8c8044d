"""Contrastive divergence (Hinton 2002) and persistent contrastive divergence (Tieleman 2008) for
restricted Boltzmann machines, as one pure surrogate loss.

For an RBM with free energy ``F`` (:mod:`jgen.energies.rbm`), ``p(v) = exp(-F(v)) / Z`` and
``d log Z = -E_p[dF(v)]``, so the gradient of the mean negative log-likelihood of data ``v_i``
splits into a data phase and a model phase::

    d(-1/n sum_i log p(v_i)) = 1/n sum_i dF(v_i) - E_{v ~ p}[dF(v)].

The data phase is exact: the hidden units are summed out in ``F`` (for a Bernoulli RBM
``dF/dW = -v sigmoid(b + v^T W)^T``, the Rao-Blackwellised positive statistics). The model phase
replaces ``E_p`` by the mean over negative samples ``v~_m``, the states of ``k`` block Gibbs steps

- started at the data themselves: CD-k (Hinton 2002, "Training products of experts by minimizing
  contrastive divergence"), biased for small ``k`` but of low variance, exact as ``k -> inf``;
- started at persistent chains carried over from the previous parameter update: PCD (Tieleman
  2008, "Training restricted Boltzmann machines using approximations to the likelihood
  gradient"), whose chains track the slowly moving model distribution, so that their states are
  nearly exact model samples when the learning rate is small.

Both are the gradient of the surrogate

    L = 1/n sum_i F(v_i) - 1/m sum_m F(stop_gradient(v~_m)),

because the negative samples are held constant. Its value is not the likelihood (``log Z`` is
unknown); the free-energy gap between data and samples and the reconstruction error are cheap
signs of progress (Hinton 2010, "A practical guide to training restricted Boltzmann machines");
measure the likelihood itself with :mod:`jgen.metrics.rbm_ais`.

Weight decay and momentum are optimiser transforms, not loss terms: Hinton's practical guide
(L2 decay ``1e-4``, momentum 0.5 rising to 0.9) is::

    opt = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=0.9))

A PCD training step keeps the chains in its state::

    (loss, aux), grads = jax.value_and_grad(cd_loss, has_aux=True)(
        params, v_batch, key, k=1, chains=state.chains)
    state = state._replace(chains=aux["chains"])
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, check_int
from jgen.energies import rbm
from jgen.samplers.gibbs import block_gibbs
from jgen.types import Array, PRNGKey


def _as_visible(name: str, x, d_v: int, dtype) -> Array:
    """Checks a visible batch ``(n, d_v)`` and casts it to the parameters' float dtype."""
    check_batch(name, x, (d_v,), floating=False)
    if np.shape(x)[0] == 0:
        raise ValueError(f"{name} must hold at least one example; got shape {np.shape(x)}")
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, dtype, float))


def cd_loss(
    params: rbm.RBM,
    v_data: Array,
    key: PRNGKey,
    k: int = 1,
    chains: Array | None = None,
) -> tuple[Array, dict]:
    """The CD-k / PCD-k surrogate loss of an RBM, whose gradient is the CD-k gradient estimate.

    With ``v~`` the visible states after ``k`` block Gibbs steps ``h ~ p(h | v)``, ``v ~ p(v |
    h)`` (:func:`jgen.samplers.gibbs.block_gibbs` with :func:`jgen.energies.rbm.conditionals`)::

        L = mean_i F(v_i) - mean_m F(stop_gradient(v~_m)),
        dL = mean_i dF(v_i) - mean_m dF(v~_m)  ~=  d(-mean_i log p(v_i)).

    The chains start at ``v_data`` (CD-k, Hinton 2002) or at ``chains`` (persistent CD, Tieleman
    2008). The sampler runs on ``stop_gradient(params)``: without it a reparameterised Gaussian
    visible draw (:class:`jgen.energies.rbm.GaussianBernoulliRBM`) would carry a spurious
    pathwise gradient, and the backward pass would run through the ``k`` steps for nothing.
    Works for every RBM of :mod:`jgen.energies.rbm` through its ``free_energy`` and
    ``conditionals``. ``k`` is a Python int: under ``jit`` bind it with ``functools.partial`` or
    ``static_argnames``.

    Args:
      params: a :class:`~jgen.energies.rbm.BernoulliRBM`,
        :class:`~jgen.energies.rbm.GaussianBernoulliRBM` or
        :class:`~jgen.energies.rbm.SpinGaussianRBM`.
      v_data: the data batch ``(n, d_v)`` (any numeric dtype; cast to the parameters' float
        dtype).
      key: PRNG key of the Gibbs chains.
      k: number of block Gibbs steps, ``>= 1``.
      chains: ``None`` for CD-k, or the persistent negative chains ``(m, d_v)`` for PCD-k (any
        ``m >= 1``; start them at noise or at data, and pass ``aux["chains"]`` back next step).

    Returns:
      ``(loss, aux)``: the scalar surrogate ``loss`` and a dict with

      - ``chains`` ``(m, d_v)``: the negative samples ``v~`` (``m = n`` for CD), the next
        persistent state for PCD;
      - ``free_energy_data``, ``free_energy_model``: the two means (scalars);
      - ``reconstruction_error``: mean over the data of ``||v - E[v | E[h | v]]||^2``
        (:func:`jgen.energies.rbm.reconstruction_error`, mean field);
      - ``visible_change_rate``: the mean fraction of visible units changed per Gibbs step.

    Raises:
      ValueError: for an unknown parameter type or inconsistent parameter shapes, ``k < 1``, or
        ``v_data`` / ``chains`` not of shape ``(n >= 1, d_v)``.
    """
    sample_h, sample_v = rbm.conditionals(jax.lax.stop_gradient(params))  # validates params
    check_int("k", k)
    d_v = np.shape(params.weights)[0]
    dtype = jnp.asarray(params.weights).dtype
    v_data = _as_visible("v_data", v_data, d_v, dtype)
    v0 = v_data if chains is None else _as_visible("chains", chains, d_v, dtype)

    state, info = block_gibbs(sample_h, sample_v, jax.lax.stop_gradient(v0), key, n_steps=k)
    v_model = jax.lax.stop_gradient(state.v)

    f_data = jnp.mean(rbm.free_energy(params, v_data))
    f_model = jnp.mean(rbm.free_energy(params, v_model))
    recon = rbm.reconstruction_error(jax.lax.stop_gradient(params), None, v_data)
    aux = {
        "chains": v_model,
        "free_energy_data": jax.lax.stop_gradient(f_data),
        "free_energy_model": jax.lax.stop_gradient(f_model),
        "reconstruction_error": jnp.mean(recon),
        "visible_change_rate": info["visible_change_rate"],
    }
    return f_data - f_model, aux
