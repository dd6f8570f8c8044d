"""Parameter perturbations for tests: zero-initialised output layers make fresh flows the
identity, which would make a bijector test vacuous."""

import jax


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
