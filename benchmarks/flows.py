"""Coupling flows against their peers, in one process: jgen's RealNVP (affine coupling) and
neural-spline flows against distrax and flowjax, ``log_prob`` and ``sample`` of 4,096 points.

Workload: D = 64, 8 coupling layers with alternating halves, conditioner MLPs with two hidden
layers of 256 (gelu, jgen's default); rational-quadratic splines with 8 bins on [-B, B], identity
outside. Each library builds the architecture as closely as it allows:

- jgen: ``module_from_config`` with ``flow='realnvp'`` / ``'spline'`` (a ChainFlow of
  ``AffineCouplingLayer`` / ``SplineCouplingLayer`` with checkerboard masks). Its conditioner
  (``SplitMLP``) reads the 32 passed-through coordinates and emits parameters for the 32
  transformed ones: 32-256-256-64 (affine), 32-256-256-736 (spline).
- distrax ``SplitCoupling``: the same sizes (affine: ``ScalarAffine`` with jgen's
  ``log_scale = s * tanh(raw)``; spline: ``RationalQuadraticSpline`` with identity boundary
  slopes), carrying jgen's weights, so it computes exactly jgen's density. SplitCoupling splits
  contiguous halves, so it runs on the coordinates reordered (even indices, then odd); the
  reordering happens once, outside the timing.
- flowjax ``coupling_flow``: its default affine transformer (softplus scale) or
  ``RationalQuadraticSpline(knots=7)`` (7 inner knots = 8 bins; 25 parameters per coordinate),
  with its own initialisation and its random permutations between layers: the same sizes, not
  the same function.

All parameters enter the jitted functions as arguments. Ratios are jgen time / peer time (< 1:
jgen is faster), each pair measured interleaved (``harness.paired_median_seconds``).

Run: ``make bench`` (or ``.venv/bin/python benchmarks/flows.py``); results in BENCHMARKS.md.
"""

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import distrax
import equinox as eqx
import flowjax
import jax
import jax.numpy as jnp
import numpy as np
from flowjax.bijections import RationalQuadraticSpline
from flowjax.distributions import Normal
from flowjax.flows import coupling_flow

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402

sys.path.insert(0, harness.ROOT)
from experiments.configs.default import get_config  # noqa: E402
from jgen.models.flow import module_from_config  # noqa: E402

N, D, LAYERS, HIDDEN = 4096, 64, 8, (256, 256)
BINS, BOUND = 8, 4.0
HALF = D // 2
# jgen's spline minimums are fractions of 2B; distrax's bin minimum is absolute.
MIN_FRACTION = 1e-3
EVEN, ODD = np.arange(0, D, 2), np.arange(1, D, 2)
SPLIT_ORDER = np.concatenate([EVEN, ODD])  # distrax SplitCoupling's coordinates


def jgen_flow(flow: str):
    """jgen's flow from the experiment config, with random (non-identity) parameters."""
    model = get_config().model
    model.flow, model.num_layers, model.hidden_sizes = flow, LAYERS, HIDDEN
    model.num_bins, model.spline_bound = BINS, BOUND
    module = module_from_config(model, (D,))
    variables = module.init(jax.random.key(0), jnp.zeros((2, D)), None, method="log_prob")
    # Conditioners start at zero output (the identity flow); draw every weight instead.
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    drawn = []
    for (path, leaf), key in zip(leaves, keys, strict=True):
        name = jax.tree_util.keystr(path)
        noise = jax.random.normal(key, leaf.shape)
        if name.endswith("['kernel']"):
            gain = 0.3 if "Dense_2" in name else 1.0  # a mild output layer keeps the flow tame
            drawn.append(gain * noise / np.sqrt(leaf.shape[0]))
        elif name.endswith("['tanh_scale']"):
            drawn.append(1.0 + 0.2 * noise)
        else:
            drawn.append(0.1 * noise)
    return module, jax.tree_util.tree_unflatten(treedef, drawn)


def layer_weights(variables, i: int):
    """Step ``i``'s conditioner MLP as ``[(W, b), ...]`` and its tanh scale (affine only)."""
    step = variables["params"][f"steps_{i}"]
    conditioner = step.get("conditioner", step)  # the spline layer holds its MLP directly
    dense = conditioner["SplitMLP_0"]["MLP_0"]
    weights = [(dense[f"Dense_{k}"]["kernel"], dense[f"Dense_{k}"]["bias"]) for k in range(3)]
    return weights, conditioner.get("tanh_scale")


def mlp(weights, x):
    """jgen's MLP (``jgen.nets.mlp.MLP``: gelu between dense layers) in plain jnp."""
    for w, b in weights[:-1]:
        x = jax.nn.gelu(x @ w + b)
    w, b = weights[-1]
    return x @ w + b


def distrax_spline(theta):
    """distrax's spline on jgen's ``3K - 1`` parameters: its two boundary slopes are unused
    (identity boundaries), so they are padded with zeros."""
    zeros = jnp.zeros(theta.shape[:-1] + (1,), theta.dtype)
    params = jnp.concatenate([theta[..., : 2 * BINS], zeros, theta[..., 2 * BINS :], zeros], -1)
    return distrax.RationalQuadraticSpline(
        params,
        -BOUND,
        BOUND,
        boundary_slopes="identity",
        min_bin_size=2 * BOUND * MIN_FRACTION,
        min_knot_slope=MIN_FRACTION,
    )


def split_params(variables, flow: str):
    """jgen's weights in distrax's layout: the affine outputs, per transformed coordinate
    ``(shift, raw)``, regrouped as ``[shifts | raws]``; the spline outputs as they are."""
    out = []
    for i in range(LAYERS):
        weights, scale = layer_weights(variables, i)
        if flow == "realnvp":
            cols = np.concatenate([np.arange(0, D, 2), np.arange(1, D, 2)])
            (w2, b2) = weights[-1]
            weights = [*weights[:-1], (w2[:, cols], b2[cols])]
        out.append((weights, scale))
    return out


def distrax_split_flow(params, flow: str) -> distrax.Transformed:
    """jgen's flow as distrax SplitCouplings on SPLIT_ORDER coordinates (``split_params``)."""
    layers = []
    for i, (weights, scale) in enumerate(params):
        if flow == "realnvp":

            def conditioner(x1, weights=weights, s=scale):
                shift, raw = jnp.split(mlp(weights, x1), 2, axis=-1)
                return shift, s * jnp.tanh(raw)

            inner = lambda p: distrax.ScalarAffine(shift=p[0], log_scale=p[1])
        else:

            def conditioner(x1, weights=weights):
                return mlp(weights, x1).reshape(*x1.shape, 3 * BINS - 1)

            inner = distrax_spline
        # Even layers pass the even coordinates (the first half in SPLIT_ORDER) through.
        layers.append(distrax.SplitCoupling(HALF, 1, conditioner, inner, swap=i % 2 == 1))
    base = distrax.MultivariateNormalDiag(jnp.zeros(D))
    return distrax.Transformed(base, distrax.Chain(layers[::-1]))  # Chain applies the last first


def flowjax_flow(flow: str):
    """flowjax's coupling flow of the same sizes; ``None`` is its default affine transformer."""
    transformer = (
        RationalQuadraticSpline(knots=BINS - 1, interval=BOUND) if flow == "spline" else None
    )
    return coupling_flow(
        jax.random.key(3),
        base_dist=Normal(jnp.zeros(D)),
        transformer=transformer,
        flow_layers=LAYERS,
        nn_width=HIDDEN[0],
        nn_depth=len(HIDDEN),
        nn_activation=jax.nn.gelu,
    )


class Side(NamedTuple):
    """One implementation: ``log_prob(params, x) -> (n,)``, ``sample(params, key) -> (n, D)``,
    the coordinate order its inputs use, and for the distrax flows that carry jgen's weights,
    ``forward(params, z)``, the latent -> data map (checked against jgen's samples)."""

    name: str
    log_prob: Callable
    sample: Callable
    params: Any
    order: np.ndarray
    forward: Callable | None = None


def sides(flow: str) -> list[Side]:
    """jgen first, then its peers, all on the ``flow`` architecture."""
    module, variables = jgen_flow(flow)
    flowjax_params, flowjax_static = eqx.partition(flowjax_flow(flow), eqx.is_array)
    flowjax_dist = lambda p: eqx.combine(p, flowjax_static)
    split = lambda p: distrax_split_flow(p, flow)
    natural = np.arange(D)
    return [
        Side(
            "jgen",
            lambda v, x: module.apply(v, x, method="log_prob"),
            lambda v, k: module.apply(v, k, N, (D,), method="sample"),
            variables,
            natural,
        ),
        Side(
            "distrax SplitCoupling",
            lambda p, x: split(p).log_prob(x),
            lambda p, k: split(p).sample(seed=k, sample_shape=N),
            split_params(variables, flow),
            SPLIT_ORDER,
            lambda p, z: split(p).bijector.forward(z),
        ),
        Side(
            "flowjax coupling_flow",
            lambda p, x: flowjax_dist(p).log_prob(x),
            lambda p, k: flowjax_dist(p).sample(k, (N,)),
            flowjax_params,
            natural,
        ),
    ]


def calls(side: Side, x, key) -> dict[str, Callable]:
    """The side's two timed operations, jitted, with every argument (parameters included)
    bound: each is a zero-argument call."""
    return {
        "log_prob": functools.partial(jax.jit(side.log_prob), side.params, x[:, side.order]),
        "sample": functools.partial(jax.jit(side.sample), side.params, key),
    }


def check(flow: str, all_sides: list[Side], all_calls: list[dict], key) -> None:
    """Finite log-densities and samples everywhere; the distrax flows that carry jgen's weights
    give jgen's log-density, and map jgen's base draws to jgen's samples, to float32 precision."""
    values = [np.asarray(c["log_prob"]()) for c in all_calls]
    jgen_draws = np.asarray(all_calls[0]["sample"]())
    z = jax.random.normal(key, (N, D))  # ChainFlow.sample's base draws
    for side, c, value in zip(all_sides, all_calls, values, strict=True):
        draws = np.asarray(c["sample"]())
        log_p_draws = np.asarray(jax.jit(side.log_prob)(side.params, draws))
        if not (np.isfinite(value).all() and np.isfinite(draws).all()):
            raise AssertionError(f"{flow}, {side.name}: non-finite log_prob or sample")
        if not np.isfinite(log_p_draws).all():
            raise AssertionError(f"{flow}, {side.name}: non-finite log_prob of its own samples")
        print(
            f"{flow:8s} {side.name}: mean log_prob {value.mean():.3f} "
            f"(own samples: {log_p_draws.mean():.3f})",
            flush=True,
        )
    for side, value in zip(all_sides, values, strict=True):
        if side.forward is None:
            continue
        np.testing.assert_allclose(
            value, values[0], rtol=1e-4, atol=1e-3, err_msg=f"{flow}: {side.name} log_prob"
        )
        draws = jax.jit(side.forward)(side.params, z[:, side.order])
        np.testing.assert_allclose(
            draws, jgen_draws[:, side.order], atol=1e-4, err_msg=f"{flow}: {side.name} sample"
        )
        print(
            f"{flow:8s} {side.name} = jgen: max |log_prob difference| "
            f"{np.abs(value - values[0]).max():.1e}, max |sample difference| "
            f"{np.abs(draws - jgen_draws[:, side.order]).max():.1e}",
            flush=True,
        )


FLOWS = {
    "realnvp": "affine coupling (RealNVP)",
    "spline": f"rational-quadratic spline ({BINS} bins, B = {BOUND:g})",
}


def main():
    load_before = os.getloadavg()[0]
    x = jax.random.normal(jax.random.key(4), (N, D))
    key = jax.random.key(5)
    rows = []
    for flow, title in FLOWS.items():
        all_sides = sides(flow)
        all_calls = [calls(side, x, key) for side in all_sides]
        check(flow, all_sides, all_calls, key)
        ours = all_calls[0]
        for op in ("log_prob", "sample"):
            for side, theirs in zip(all_sides[1:], all_calls[1:], strict=True):
                t_ours, t_peer = harness.paired_median_seconds(ours[op], theirs[op])
                rows.append(
                    f"| {title} | {op} | {side.name} | {1e3 * t_ours:.1f} | {1e3 * t_peer:.1f} "
                    f"| {t_ours / t_peer:.2f} |"
                )
                print(rows[-1], flush=True)
    harness.write_section(
        "Flows",
        [
            f"`make bench` on {harness.machine()}; jax {jax.__version__}, distrax "
            f"{distrax.__version__}, flowjax {flowjax.__version__}. D = {D}, {N} points per "
            f"call, {LAYERS} coupling layers, conditioner MLPs with hidden layers "
            f"{'-'.join(map(str, HIDDEN))} (gelu); what each library builds is in the docstring "
            "of `benchmarks/flows.py`. Times: medians of one jitted call (ms), jgen and each peer "
            "measured interleaved; **jgen / peer < 1: jgen is faster**. 1-minute load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run (other jobs "
            "shared the cores), so compare ratios rather than absolute times.",
            "",
            "jgen's coupling conditioners read only the passed-through half and its splines run "
            "only on the transformed half, as distrax's SplitCoupling does (before that, a "
            "full-width conditioner on the masked vector made jgen 1.23x (affine) and 1.8x "
            "(spline) slower than distrax).",
            "",
            "| flow | op | peer | jgen (ms) | peer (ms) | jgen / peer |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
