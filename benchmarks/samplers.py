"""Samplers against their peers, in one process: jgen's Langevin / MALA / HMC against blackjax
(sgld, mala, hmc), and 1,000 reverse VP-SDE Euler-Maruyama steps against diffrax.

Workload: an MLP energy 2-128-128-1 (tanh), 1,024 particles. blackjax kernels are per chain
(MALA and HMC accept or reject each chain), so they run under ``vmap``; blackjax's SGLD takes the
whole particle array as its position (its update has no accept step). Both sides scan the same
number of steps in one jitted call; the ratio is peer time / jgen time (> 1: jgen is faster).
Achieved GFLOP/s counts the MLP's matmul flops (a forward pass is 2·(2·128 + 128·128 + 128)
per particle; the gradient with respect to x, the only one a sampler needs, costs one more
forward-equivalent) against the measured matmul peak.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/samplers.py``); results in BENCHMARKS.md.
"""

import sys

import blackjax
import diffrax
import jax
import jax.numpy as jnp
import lineax

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402

from jgen.convert import score_from_log_prob  # noqa: E402
from jgen.samplers.langevin import hmc, langevin, mala  # noqa: E402
from jgen.samplers.sde import sample_sde  # noqa: E402
from jgen.sdes.sde import VPSDE  # noqa: E402

N, D, H, STEPS = 1024, 2, 128, 100
SDE_STEPS = 1000
MLP_FLOPS = 2 * (D * H + H * H + H)  # forward multiply-adds x2, per particle


def mlp_params(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (a, b)) / jnp.sqrt(a), jnp.zeros(b))
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params, x):
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


PARAMS = mlp_params(jax.random.key(0), [D, H, H, 1])


def log_prob(x):  # -E(x) for a batch (n, 2) -> (n,)
    return -mlp(PARAMS, x)[:, 0] - 0.5 * jnp.sum(x**2, -1)


def log_prob_one(x):  # blackjax's per-chain log-density
    return log_prob(x[None])[0]


X0 = jax.random.normal(jax.random.key(1), (N, D))
KEY = jax.random.key(2)


@jax.jit
def jgen_langevin(x, key):
    return langevin(score_from_log_prob(log_prob), x, key, step_size=0.01, n_steps=STEPS)[0]


@jax.jit
def blackjax_sgld(x, key):
    kernel = blackjax.sgld(lambda position, _: jax.grad(lambda p: jnp.sum(log_prob(p)))(position))

    def body(x, key):
        return kernel.step(key, x, None, 0.005), None

    return jax.lax.scan(body, x, jax.random.split(key, STEPS))[0]


@jax.jit
def jgen_mala(x, key):
    return mala(log_prob, x, key, step_size=0.01, n_steps=STEPS)[0]


@jax.jit
def blackjax_mala(x, key):
    kernel = blackjax.mala(log_prob_one, 0.01)
    state = jax.vmap(kernel.init)(x)

    def body(state, key):
        keys = jax.random.split(key, N)
        return jax.vmap(kernel.step)(keys, state)[0], None

    return jax.lax.scan(body, state, jax.random.split(key, STEPS))[0].position


@jax.jit
def jgen_hmc(x, key):
    return hmc(log_prob, x, key, step_size=0.05, n_leapfrog=10, n_steps=STEPS)[0]


@jax.jit
def blackjax_hmc(x, key):
    kernel = blackjax.hmc(log_prob_one, 0.05, jnp.ones(D), 10)
    state = jax.vmap(kernel.init)(x)

    def body(state, key):
        keys = jax.random.split(key, N)
        return jax.vmap(kernel.step)(keys, state)[0], None

    return jax.lax.scan(body, state, jax.random.split(key, STEPS))[0].position


SCORE_PARAMS = mlp_params(jax.random.key(3), [D + 1, H, H, D])


def score_net(x, t):
    return mlp(SCORE_PARAMS, jnp.concatenate([x, t[:, None]], -1))


VP = VPSDE()
EPS = 1e-3


@jax.jit
def jgen_reverse_sde(key):
    return sample_sde(VP, score_net, key, (N, D), n_steps=SDE_STEPS, denoise=False, eps=EPS)[0]


@jax.jit
def diffrax_reverse_sde(key):
    """The same reverse SDE in forward time s = T - t, Euler-Maruyama with fixed steps."""
    k_prior, k_path = jax.random.split(key)

    def drift(s, x, _):
        t = jnp.full((N,), VP.T - s)
        g2 = VP.diffusion(t)[:, None] ** 2
        return -(VP.drift(x, t) - g2 * score_net(x, t))

    def diffusion(s, x, _):
        g = VP.diffusion(jnp.full((N,), VP.T - s))[:, None]
        return lineax.DiagonalLinearOperator(g * jnp.ones_like(x))

    terms = diffrax.MultiTerm(
        diffrax.ODETerm(drift),
        diffrax.ControlTerm(diffusion, diffrax.UnsafeBrownianPath((N, D), k_path)),
    )
    dt = (VP.T - EPS) / SDE_STEPS
    solution = diffrax.diffeqsolve(
        terms,
        diffrax.Euler(),
        0.0,
        VP.T - EPS,
        dt,
        jax.random.normal(k_prior, (N, D)),
        max_steps=SDE_STEPS + 1,
        adjoint=diffrax.ForwardMode(),  # no backprop needed; UnsafeBrownianPath requires it
    )
    return solution.ys[-1]


def main():
    peak = harness.matmul_peak_gflops()
    rows = []
    cases = [
        ("Langevin step", jgen_langevin, blackjax_sgld, "blackjax.sgld", 2, (X0, KEY), STEPS),
        ("MALA step", jgen_mala, blackjax_mala, "blackjax.mala", 2, (X0, KEY), STEPS),
        ("HMC step (10 leapfrog)", jgen_hmc, blackjax_hmc, "blackjax.hmc", 20, (X0, KEY), STEPS),
        (
            "reverse VP-SDE step",
            jgen_reverse_sde,
            diffrax_reverse_sde,
            "diffrax Euler",
            1,
            (KEY,),
            SDE_STEPS,
        ),
    ]
    for name, ours, theirs, peer, passes, args, steps in cases:
        t_ours, t_peer = harness.paired_median_seconds(ours, theirs, *args)
        # passes: MLP forward-equivalents per step (value and x-gradient = 2; HMC: 10 of them).
        gflops = passes * MLP_FLOPS * N * steps / t_ours / 1e9
        rows.append(
            f"| {name} | {peer} | {1e6 * t_ours / steps:.1f} | {1e6 * t_peer / steps:.1f} "
            f"| {t_peer / t_ours:.2f} | {gflops:.1f} ({100 * gflops / peak:.0f}% of peak) |"
        )
        print(rows[-1], flush=True)
    harness.write_section(
        "Samplers",
        [
            f"`make bench` on {harness.machine()}; jax {jax.__version__}, blackjax "
            f"{blackjax.__version__}, diffrax {diffrax.__version__}. MLP energy / score "
            f"2-128-128, {N} particles. Measured matmul peak: {peak:.0f} GFLOP/s (float32).",
            "",
            "| per step | peer | jgen (µs) | peer (µs) | peer / jgen | jgen GFLOP/s |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
