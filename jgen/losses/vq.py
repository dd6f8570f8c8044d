"""Vector quantisation for VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete
representation learning"), as pure functions.

The encoder output ``z_e`` has shape ``(B, ..., d)``: a batch, any number of latent positions
(none, a sequence, an image grid) and the code dimension last. The codebook ``e`` has shape
``(K, d)``. Each position is replaced by its nearest code ``e_k``, ``k = argmin_j |z_e - e_j|^2``;
the decoder sees ``z_q = e_k`` and the encoder gets the decoder's gradient through the
straight-through estimator. The codebook is learned either by gradient descent on the codebook
term of :func:`vq_loss`, or by exponential moving averages of the vectors assigned to each code
(the paper's Appendix A.1; Razavi, van den Oord & Vinyals 2019, VQ-VAE-2), :func:`ema_update`.
Codes that stop being used are moved onto encoder outputs, :func:`restart_dead_codes` (Dhariwal
et al. 2020, Jukebox; Williams et al. 2020, "Hierarchical quantized autoencoders").

A training step with the EMA codebook::

    def loss_fn(params, x, state):           # state: EMAState, not differentiated
        z_e = encode(params, x)
        z_q, idx = quantize(z_e, state.codebook)
        vq, aux = vq_loss(z_e, state.codebook, indices=idx)
        return jnp.mean(recon_nll(params, z_q, x) + vq), (z_e, idx)

    grads, (z_e, idx) = jax.grad(loss_fn, has_aux=True)(params, x, state)
    state = ema_update(state, z_e, idx)
    state = restart_dead_codes(key, state, z_e, state.cluster_size, threshold=1.0)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive, is_traced
from jgen.metrics.mmd import squared_distances
from jgen.types import Array, PRNGKey


class EMAState(NamedTuple):
    """The EMA codebook of ``K`` codes of dimension ``d`` (a pytree).

    Attributes:
      cluster_size: ``(K,)`` ``N_k``, the moving average of the number of vectors assigned to
        code ``k`` per batch.
      embed_sum: ``(K, d)`` ``m_k``, the moving average of the sum of those vectors.
      codebook: ``(K, d)`` the codes ``e_k`` (``m_k / N~_k`` for every code updated so far).
    """

    cluster_size: Array
    embed_sum: Array
    codebook: Array


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_codebook(codebook) -> tuple[int, int]:
    shape = tuple(np.shape(codebook))
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"codebook must have shape (K, d) with K >= 1 and d >= 1; got {shape}")
    if not np.issubdtype(codebook.dtype, np.floating):
        raise ValueError(f"codebook must have a floating-point dtype; got dtype {codebook.dtype}")
    return shape


def _check_z_e(z_e, d: int) -> None:
    shape = tuple(np.shape(z_e))
    if len(shape) < 2 or shape[-1] != d:
        raise ValueError(
            f"z_e must have shape (B, ..., d) with d = {d} (the codebook's code dimension); "
            f"got shape {shape}"
        )
    if not np.issubdtype(z_e.dtype, np.floating):
        raise ValueError(f"z_e must have a floating-point dtype; got dtype {z_e.dtype}")


def _check_indices(indices, shape: tuple[int, ...]) -> None:
    got = tuple(np.shape(indices))
    if got != shape:
        raise ValueError(f"indices must have shape {shape} (z_e.shape[:-1]); got shape {got}")
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must have an integer dtype; got dtype {indices.dtype}")


def _check_state(state: EMAState) -> tuple[int, int]:
    k, d = _check_codebook(state.codebook)
    for field, expected in (("cluster_size", (k,)), ("embed_sum", (k, d))):
        got = tuple(np.shape(getattr(state, field)))
        if got != expected:
            raise ValueError(
                f"state.{field} must have shape {expected} for a codebook of shape {(k, d)}; "
                f"got shape {got}"
            )
    return k, d


def _check_decay(decay) -> None:
    if is_traced(decay):
        return
    value = np.asarray(decay)
    if value.ndim != 0 or not np.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"decay must be a scalar in [0, 1); got {decay!r}")


# ---------------------------------------------------------------------------------------------
# Quantisation and its loss
# ---------------------------------------------------------------------------------------------


def nearest_codes(z_e: Array, codebook: Array) -> Array:
    """The index of the nearest code at every position: ``k = argmin_j |z_e - e_j|^2``.

    Distances use ``|z|^2 + |e|^2 - 2 z.e`` (one ``(N, d) @ (d, K)`` product, no ``(N, K, d)``
    temporary), at ``Precision.HIGHEST`` so that bfloat16/TF32 matmuls on accelerators do not
    change which code is nearest. Ties go to the lowest index.

    Args:
      z_e: encoder outputs ``(B, ..., d)``.
      codebook: ``(K, d)``.

    Returns:
      ``(B, ...)`` int32 indices in ``[0, K)``.

    Raises:
      ValueError: when the shapes or dtypes do not match.
    """
    _, d = _check_codebook(codebook)
    _check_z_e(z_e, d)
    with jax.default_matmul_precision("highest"):
        dist = squared_distances(jnp.reshape(z_e, (-1, d)), codebook)
    return jnp.argmin(dist, axis=-1).astype(jnp.int32).reshape(z_e.shape[:-1])


def quantize(z_e: Array, codebook: Array) -> tuple[Array, Array]:
    """Nearest-code quantisation with the straight-through estimator (van den Oord et al. 2017,
    Sec. 3.1)::

        z_q = z_e + sg(e_k - z_e),   k = argmin_j |z_e - e_j|^2,

    so the forward value is the code ``e_k`` and the gradient of anything downstream of ``z_q``
    is copied unchanged to ``z_e`` (``dz_q / dz_e = I``); no gradient reaches the codebook
    through ``z_q``: the codebook learns from :func:`vq_loss` or :func:`ema_update`.

    Args:
      z_e: encoder outputs ``(B, ..., d)``.
      codebook: ``(K, d)``.

    Returns:
      ``(z_q, indices)``: ``z_q`` of the shape of ``z_e``, ``indices`` ``(B, ...)`` int32.

    Raises:
      ValueError: when the shapes or dtypes do not match.
    """
    indices = nearest_codes(z_e, codebook)
    codes = jnp.take(codebook, indices, axis=0)
    return z_e + jax.lax.stop_gradient(codes - z_e), indices


def vq_loss(
    z_e: Array, codebook: Array, *, commitment: float = 0.25, indices: Array | None = None
) -> tuple[Array, dict[str, Array]]:
    """The codebook and commitment terms of the VQ-VAE objective (van den Oord et al. 2017,
    Eq. 3)::

        loss = |sg(z_e) - e_k|^2 + beta |z_e - sg(e_k)|^2,

    with ``|.|^2`` the squared Euclidean norm as in the paper, summed over the latent positions
    and the code dimension: per example, like the reconstruction log-likelihood it is added to.
    (Sonnet and several re-implementations take the mean instead, which rescales ``beta`` and the
    codebook's learning rate by ``1 / (positions * d)``.) The codebook term moves each code
    towards the encoder outputs assigned to it (its gradient w.r.t. ``e_k`` is
    ``sum_{i: k_i = k} 2 (e_k - z_i)``); the commitment term keeps the encoder close to its codes
    (gradient ``2 beta (z_e - e_k)`` w.r.t. ``z_e``). Both terms have the same value and differ
    only in where their gradient goes.

    With the EMA codebook (:func:`ema_update`) the codebook term must not train the codes: pass
    ``state.codebook``, which is not among the parameters being differentiated, so the term is a
    constant for the gradient (``sg(z_e)`` already keeps it from the encoder) and only the
    commitment term trains; report ``beta * aux["commitment"]`` if the constant is unwanted in the
    logged loss.

    Args:
      z_e: encoder outputs ``(B, ..., d)``.
      codebook: ``(K, d)``.
      commitment: ``beta >= 0``; 0.25 in the paper.
      indices: ``(B, ...)`` the assigned codes, e.g. from :func:`quantize`, to avoid a second
        nearest-code search; ``None`` computes them with :func:`nearest_codes`.

    Returns:
      ``(loss (B,), aux)`` with ``aux["codebook"]`` ``(B,)`` the codebook term,
      ``aux["commitment"]`` ``(B,)`` the unweighted commitment term (``loss = aux["codebook"] +
      beta * aux["commitment"]``) and ``aux["indices"]`` ``(B, ...)``.

    Raises:
      ValueError: when the shapes or dtypes do not match or ``commitment < 0``.
    """
    _, d = _check_codebook(codebook)
    _check_z_e(z_e, d)
    check_positive("commitment", commitment, allow_zero=True)
    if indices is None:
        indices = nearest_codes(z_e, codebook)
    else:
        _check_indices(indices, z_e.shape[:-1])
    codes = jnp.take(codebook, indices, axis=0)
    axes = tuple(range(1, z_e.ndim))
    codebook_term = jnp.sum((jax.lax.stop_gradient(z_e) - codes) ** 2, axis=axes)
    commitment_term = jnp.sum((z_e - jax.lax.stop_gradient(codes)) ** 2, axis=axes)
    aux = {"codebook": codebook_term, "commitment": commitment_term, "indices": indices}
    return codebook_term + commitment * commitment_term, aux


# ---------------------------------------------------------------------------------------------
# EMA codebook and dead-code restarts
# ---------------------------------------------------------------------------------------------


def ema_init(codebook: Array) -> EMAState:
    """The EMA state of a fresh codebook: ``N_k = 0``, ``m_k = 0``, codes ``e_k`` as given.

    Starting the averages at zero (rather than at ``m_k = e_k``) keeps ``m_k / N_k`` meaningful:
    a code's first update puts it at the (smoothed) mean of its assigned vectors, as a
    bias-corrected moving average would.

    Args:
      codebook: the initial codes ``(K, d)``.

    Returns:
      An :class:`EMAState`.

    Raises:
      ValueError: when ``codebook`` is not ``(K, d)`` floating point with ``K >= 1``.
    """
    k, _ = _check_codebook(codebook)
    return EMAState(
        cluster_size=jnp.zeros((k,), codebook.dtype),
        embed_sum=jnp.zeros_like(codebook),
        codebook=jnp.asarray(codebook),
    )


def ema_update(
    state: EMAState,
    z_e: Array,
    indices: Array,
    *,
    decay: float = 0.99,
    epsilon: float = 1e-5,
) -> EMAState:
    """One EMA update of the codebook (van den Oord et al. 2017, Appendix A.1; Razavi et al.
    2019)::

        N_k <- decay N_k + (1 - decay) n_k,        n_k = #{i : k_i = k}
        m_k <- decay m_k + (1 - decay) sum_{i: k_i = k} z_i
        e_k <- m_k / N~_k,    N~_k = (N_k + eps) / (N + K eps) N,   N = sum_k N_k,

    where the sums run over every position of every example. ``N~_k`` is the Laplace smoothing of
    the Sonnet implementation; it bounds the division for codes whose ``N_k`` is tiny. A fixed
    batch is a fixed point exactly when every code is the mean of its assigned vectors (up to the
    smoothing), the k-means (Lloyd) condition. Codes with no vector in this batch keep their value:
    their ``m_k`` and ``N_k`` decay by the same factor, so ``m_k / N_k`` is unchanged, and
    dividing anew would only add the drift of the smoothing (or divide ``0 / eps`` for a code
    never used). Under ``jit`` over a data-sharded batch the sums are global, so replicas agree.

    Args:
      state: the current :class:`EMAState` (``K`` codes of dimension ``d``).
      z_e: encoder outputs ``(B, ..., d)``; no gradient flows through the update.
      indices: ``(B, ...)`` their assigned codes in ``[0, K)``, e.g. from :func:`quantize`.
      decay: in ``[0, 1)``; 0.99 in the paper. ``0`` sets every used code to the (smoothed) mean
        of this batch's vectors, one k-means step.
      epsilon: the smoothing ``eps > 0``.

    Returns:
      The updated :class:`EMAState`.

    Raises:
      ValueError: when the shapes or dtypes do not match, ``decay`` is not in ``[0, 1)`` or
        ``epsilon <= 0``.
    """
    k, d = _check_state(state)
    _check_z_e(z_e, d)
    _check_indices(indices, z_e.shape[:-1])
    _check_decay(decay)
    check_positive("epsilon", epsilon)
    flat_z = jax.lax.stop_gradient(jnp.reshape(z_e, (-1, d))).astype(state.embed_sum.dtype)
    flat_idx = jnp.reshape(indices, (-1,))
    counts = jnp.bincount(flat_idx, length=k).astype(state.cluster_size.dtype)
    sums = jax.ops.segment_sum(flat_z, flat_idx, num_segments=k)
    cluster_size = decay * state.cluster_size + (1.0 - decay) * counts
    embed_sum = decay * state.embed_sum + (1.0 - decay) * sums
    total = jnp.sum(cluster_size)
    smoothed = (cluster_size + epsilon) / (total + k * epsilon) * total
    codebook = jnp.where((counts > 0)[:, None], embed_sum / smoothed[:, None], state.codebook)
    return EMAState(cluster_size=cluster_size, embed_sum=embed_sum, codebook=codebook)


def restart_dead_codes(
    key: PRNGKey,
    codebook: Array | EMAState,
    z_e: Array,
    usage: Array,
    *,
    threshold: float,
) -> Array | EMAState:
    """Moves every code whose usage is below ``threshold`` onto a random encoder output of the
    batch (Dhariwal et al. 2020, Jukebox, Sec. 2.3; Williams et al. 2020, Sec. 3.3).

    Dead codes are those with ``usage_k < threshold``; each is replaced by a different vector
    ``z_i`` drawn uniformly from the ``N`` positions of the batch (without replacement when
    ``N >= K``, so two restarted codes do not coincide; with replacement otherwise). Live codes
    are unchanged.

    One function serves both codebooks, the result having the type of the input:

    - a plain codebook ``(K, d)`` (trained by gradient): ``usage`` is whatever the caller tracks,
      e.g. this batch's counts ``jnp.bincount(indices.ravel(), length=K)`` or a running average;
    - an :class:`EMAState`: ``usage`` is normally ``state.cluster_size``. A restarted code's
      statistics are reset consistently with its new value: ``N_k = threshold``,
      ``m_k = threshold * z_i``, so ``m_k / N_k = z_i``. Starting it exactly at the threshold
      means it survives the next check if and only if it is used at least ``threshold`` times
      in the next batch (``N_k`` stays ``>= threshold`` exactly then), the same criterion as the
      long-run average ``N_k -> n_k`` of a code used ``n_k`` times per batch.

    Args:
      key: a PRNG key.
      codebook: a codebook ``(K, d)`` or an :class:`EMAState`.
      z_e: encoder outputs ``(B, ..., d)``; no gradient flows through the restart.
      usage: ``(K,)`` per-code usage, in the units of ``threshold``.
      threshold: ``> 0``; codes with ``usage < threshold`` are restarted.

    Returns:
      The codebook ``(K, d)`` or the :class:`EMAState`, with the dead codes restarted.

    Raises:
      ValueError: when the shapes or dtypes do not match or ``threshold <= 0``.
    """
    is_state = isinstance(codebook, EMAState)
    k, d = _check_state(codebook) if is_state else _check_codebook(codebook)
    codes = codebook.codebook if is_state else codebook
    _check_z_e(z_e, d)
    if tuple(np.shape(usage)) != (k,):
        raise ValueError(f"usage must have shape ({k},) (one per code); got {np.shape(usage)}")
    check_positive("threshold", threshold)
    flat_z = jax.lax.stop_gradient(jnp.reshape(z_e, (-1, d))).astype(codes.dtype)
    n = flat_z.shape[0]
    candidates = flat_z[jax.random.choice(key, n, shape=(k,), replace=n < k)]
    dead = usage < threshold
    new_codes = jnp.where(dead[:, None], candidates, codes)
    if not is_state:
        return new_codes
    return EMAState(
        cluster_size=jnp.where(dead, threshold, codebook.cluster_size),
        embed_sum=jnp.where(dead[:, None], threshold * candidates, codebook.embed_sum),
        codebook=new_codes,
    )


# ---------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------


def _code_histogram(indices: Array, num_codes: int) -> Array:
    check_int("num_codes", num_codes, minimum=1)
    if not np.issubdtype(jnp.asarray(indices).dtype, np.integer):
        raise ValueError(f"indices must have an integer dtype; got dtype {indices.dtype}")
    return jnp.bincount(jnp.ravel(indices), length=num_codes)


def codebook_perplexity(indices: Array, num_codes: int) -> Array:
    """``exp(H(p))`` of the code usage ``p_k = n_k / N`` over all positions of the batch.

    It is the effective number of codes in use: ``K`` for uniform usage of ``K`` codes, 1 when
    every position takes the same code (van den Oord et al. 2017 report it to detect codebook
    collapse).

    Args:
      indices: assigned codes of any shape, e.g. ``(B, ...)``, in ``[0, num_codes)``.
      num_codes: ``K >= 1``.

    Returns:
      A scalar in ``[1, K]``.

    Raises:
      ValueError: when ``num_codes < 1`` or ``indices`` is not integer.
    """
    counts = _code_histogram(indices, num_codes)
    p = counts / jnp.sum(counts)
    return jnp.exp(jnp.sum(jax.scipy.special.entr(p)))


def codebook_usage(indices: Array, num_codes: int) -> Array:
    """The share of the ``K`` codes assigned to at least one position of the batch.

    Args:
      indices: assigned codes of any shape, in ``[0, num_codes)``.
      num_codes: ``K >= 1``.

    Returns:
      A scalar in ``[1/K, 1]``.

    Raises:
      ValueError: when ``num_codes < 1`` or ``indices`` is not integer.
    """
    counts = _code_histogram(indices, num_codes)
    return jnp.mean(counts > 0)
