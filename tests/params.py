"""Parameter perturbations for tests: zero-initialised output layers make fresh flows the
identity, which would make a bijector test vacuous."""

import jax
import numpy as np


def add_noise(params, key, scale: float):
    """``params + scale * N(0, I)``, leaf by leaf."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        p + scale * jax.random.normal(k, p.shape, p.dtype)
        for p, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def redraw(params, key, scale: float = 0.5):
    """Every parameter redrawn from ``N(0, scale^2)`` (biases and masked-out weights included)."""
    return add_noise(jax.tree.map(lambda p: p * 0, params), key, scale)


def float64(tree):
    """Every floating-point leaf cast to float64 (Flax creates float32 parameters even under
    x64); integer leaves (fixed permutations) are kept."""

    def cast(a):
        return (
            a.astype(jax.numpy.float64) if jax.numpy.issubdtype(a.dtype, jax.numpy.floating) else a
        )

    return jax.tree.map(cast, tree)


def random_params(module, *init_args, seed: int = 0, scale: float = 0.5, dtype=None):
    """Variables of ``module.init(key, *init_args)`` with every leaf drawn from
    ``N(0, scale^2)`` (as :func:`redraw`), with numpy from the shapes alone: running Flax's
    initialisers op by op, or compiling them (an orthogonal init does a QR), costs more than the
    tests that use the parameters. ``dtype`` as in :func:`random_like`."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), *init_args)
    return random_like(shapes, seed=seed, scale=scale, dtype=dtype)


def random_like(shapes, seed: int = 0, scale: float = 0.5, dtype=None):
    """A pytree shaped like ``shapes`` (arrays or ``jax.ShapeDtypeStruct``s) with every leaf
    drawn from ``N(0, scale^2)`` by numpy, as ``dtype`` (default: the default float, float64
    under the ``x64`` fixture)."""
    rng = np.random.default_rng(seed)
    dtype = dtype or jax.numpy.asarray(0.0).dtype
    return jax.tree.map(lambda s: jax.numpy.asarray(rng.normal(0.0, scale, s.shape), dtype), shapes)
