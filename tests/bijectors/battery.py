"""The test battery every bijector passes (DESIGN.md): inverse(forward(x)) = x, forward log-det =
minus inverse log-det at the image, log-det = slogdet of the autodiff Jacobian, and the same
results under jit and vmap. Call it inside a test that uses the ``x64`` fixture."""

import jax
import jax.numpy as jnp
import numpy as np


def check_bijector(bijector, x, *, atol: float = 1e-9, event_ndims: int = 1) -> None:
    """Runs the battery on a batch ``x`` of shape ``(n, *event)`` (event of ``event_ndims`` axes).

    Raises AssertionError on the first property that fails. The Jacobian is taken per example on
    the flattened event, so it checks ``log|det|`` of the full map of one example.
    """
    event_shape = x.shape[1:]
    y, fwd_logdet = bijector.forward_and_log_det(x)
    assert y.shape == x.shape and fwd_logdet.shape == x.shape[:1], (y.shape, fwd_logdet.shape)
    assert not np.allclose(y, x), "the bijector is the identity: the battery would be vacuous"

    x_back, inv_logdet = bijector.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=atol, err_msg="inverse(forward(x)) != x")
    np.testing.assert_allclose(inv_logdet, -fwd_logdet, atol=atol, err_msg="log-dets disagree")

    def single(v):
        return bijector.forward(v.reshape(1, *event_shape)).reshape(-1)

    jacobians = jax.vmap(jax.jacfwd(single))(x.reshape(len(x), -1))
    sign, logabsdet = jnp.linalg.slogdet(jacobians)
    assert np.all(np.asarray(sign) != 0), "singular Jacobian"
    np.testing.assert_allclose(fwd_logdet, logabsdet, atol=atol, err_msg="log-det != slogdet(J)")

    y_jit, ld_jit = jax.jit(bijector.forward_and_log_det)(x)
    np.testing.assert_allclose(y_jit, y, atol=atol)
    np.testing.assert_allclose(ld_jit, fwd_logdet, atol=atol)
    y_vmap, ld_vmap = jax.vmap(bijector.forward_and_log_det)(x[:, None])
    np.testing.assert_allclose(y_vmap[:, 0], y, atol=atol)
    np.testing.assert_allclose(ld_vmap[:, 0], fwd_logdet, atol=atol)
