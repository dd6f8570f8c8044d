"""Trains (or resumes) a VAE on the shapes grid and scores the disentanglement of its encoder:

    python experiments/disentanglement.py --config=experiments/configs/vae_shapes.py[:beta4] \\
        --workdir=DIR

Training is that of ``experiments/main.py`` (``jgen.train.loop.train_and_evaluate``; a workdir
holding checkpoints resumes, a finished one only re-evaluates) on
:func:`experiments.datasets.shapes_dataset`. The
last state (the ``best/`` one when ``train.select_metric`` is set) is then restored and the mean
``mu(x)`` and log standard deviation of ``q(z | x)`` computed for all 6144 images of the grid.
The means are the representation that the beta-VAE metric (Higgins et al. 2017), the FactorVAE
metric (Kim & Mnih 2018) and MIG (Chen et al. 2018) score (``jgen.metrics.disentanglement``),
as in disentanglement_lib. Written to ``DIR/disentanglement.json`` and printed: the three scores,
MIG's per-factor gaps, the test NLL and negative ELBO (nats per image), and per latent the mean KL
to the prior and the activity ``Var_x mu(x)`` with the number of active units (Burda et al. 2016).
"""

import json
import os
import sys
import time

# Run as a script, Python puts experiments/ on the path; the package lives one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments import datasets  # noqa: E402
from jgen.checks import check_choice  # noqa: E402
from jgen.data import shapes  # noqa: E402
from jgen.data.batching import take  # noqa: E402
from jgen.losses.elbo import gaussian_kl  # noqa: E402
from jgen.metrics.disentanglement import disentanglement_scores, encode_dataset, mig  # noqa: E402
from jgen.models import vae  # noqa: E402
from jgen.models.latent_variable import likelihood_from_config  # noqa: E402
from jgen.train import checkpoint  # noqa: E402
from jgen.train.loop import train_and_evaluate  # noqa: E402
from jgen.train.state import eval_params  # noqa: E402

# The fixed split of the grid: a permutation drawn once from this seed, cut 80 / 10 / 10. It does
# not follow config.seed, so runs with different seeds are compared on the same test images.

# Burda, Grosse & Salakhutdinov 2016 ("Importance weighted autoencoders", Sec. 5.2): latent u is
# active when Cov_x(E_q[u | x]) exceeds 1e-2.
ACTIVITY_THRESHOLD = 1e-2

# fold_in index of the metrics' key; the training loop uses 0..3 of the same root.
_METRICS_KEY = 100


def _check_config(config) -> None:
    check_choice("model.name", config.model.name, ("vae",))
    check_choice("data.source", config.data.source, ("shapes",))
    # The representation is the mean of a diagonal-Gaussian q(z | x): an IAF would move it, and
    # a conditional encoder would need the class, which the grid does not have.
    for field in ("iaf_steps", "num_classes"):
        if config.model.get(field, 0):
            raise ValueError(
                f"model.{field} must be 0 for the disentanglement metrics; got "
                f"{config.model[field]!r}"
            )


def make_module(config) -> vae.VAE:
    """The Flax module that ``jgen.models.vae.make`` builds from ``config`` (to call its
    ``encode``)."""
    mc = config.model
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    return vae.VAE(
        shapes.IMAGE_SHAPE,
        mc.latent_dim,
        tuple(mc.hidden_sizes),
        likelihood.outputs_per_dim,
        iaf_steps=mc.iaf_steps,
        iaf_context=mc.iaf_context,
        iaf_hidden=tuple(mc.iaf_hidden),
    )


def restore_params(config, workdir: str, trainer, example) -> tuple[dict, int]:
    """The evaluation parameters of the run's final state: the selected (``best/``) state when
    ``train.select_metric`` is set, else the last checkpoint.

    Args:
      config: the run's config.
      workdir: the run directory.
      trainer: the run's Trainer (for the state's structure).
      example: a training batch (shapes only).

    Returns:
      ``(params, step)``.

    Raises:
      ValueError: when ``workdir`` holds no checkpoint.
    """
    # Only the structure is needed: abstract arrays spare running (and compiling) the init.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
        jax.eval_shape(trainer.init, jax.random.key(0), example),
    )
    directory = "best" if config.train.select_metric else "checkpoints"
    manager = checkpoint.make_manager(
        os.path.join(workdir, directory), config.train.keep_checkpoints
    )
    state, step = checkpoint.restore_latest(manager, like)
    if step is None:
        raise ValueError(f"workdir must hold a trained run; {workdir}/{directory} is empty")
    return eval_params(state), step


def posterior_statistics(module: vae.VAE, params, images) -> tuple[np.ndarray, np.ndarray]:
    """``mu(x)`` and ``log sigma(x)`` of ``q(z | x)`` for every image.

    Args:
      module: the VAE module.
      params: its parameters.
      images: ``(n, 32, 32)``.

    Returns:
      ``(mean, log_std)``, each ``(n, latent_dim)`` numpy.
    """

    @jax.jit
    def encode(x):
        mean, log_std = module.apply({"params": params}, x, method="encode")
        return jax.numpy.concatenate([mean, log_std], axis=1)

    both = encode_dataset(encode, images)
    return np.split(both, 2, axis=1)


def latent_activity(mean: np.ndarray, log_std: np.ndarray) -> dict:
    """Per-latent summaries of ``q(z | x)`` over a set of images.

    ``kl_per_dim[u] = 1/n sum_x KL(q(z_u | x) || N(0, 1))`` (so the ELBO's KL term is their sum)
    and ``activity[u] = Var_x mu_u(x)`` (population variance); ``active_units`` counts
    ``activity > ACTIVITY_THRESHOLD`` (Burda et al. 2016).

    Args:
      mean: ``(n, L)`` posterior means.
      log_std: ``(n, L)`` posterior log standard deviations.

    Returns:
      ``{"kl_per_dim": [L floats], "activity": [L floats], "active_units": int,
      "activity_threshold": float}``.
    """
    n, num_latents = mean.shape
    # Each latent is a 1-D Gaussian: the library's KL on (n L, 1) rows is the KL per latent.
    kl = gaussian_kl(mean.reshape(-1, 1), log_std.reshape(-1, 1))
    kl_per_dim = np.asarray(kl, np.float64).reshape(n, num_latents).mean(0)
    activity = np.var(mean.astype(np.float64), axis=0)
    return {
        "kl_per_dim": kl_per_dim.tolist(),
        "activity": activity.tolist(),
        "active_units": int(np.sum(activity > ACTIVITY_THRESHOLD)),
        "activity_threshold": ACTIVITY_THRESHOLD,
    }


def run(config, workdir: str) -> dict:
    """Trains (or resumes) the VAE of ``config`` on the shapes grid in ``workdir``, scores its
    encoder means and writes ``workdir/disentanglement.json``.

    Args:
      config: a ``vae_shapes.py`` config (``model.name = "vae"``, ``data.source = "shapes"``, a
        ``disentanglement`` block with ``num_train`` and ``num_eval``).
      workdir: the run directory.

    Returns:
      The report written to the JSON file (module docstring).

    Raises:
      ValueError: naming ``model.name`` or ``data.source`` when they are not ``"vae"`` and
        ``"shapes"``, ``model.iaf_steps`` or ``model.num_classes`` when not 0, and as
        :func:`experiments.datasets.shapes_dataset` and the training loop do.
    """
    _check_config(config)
    data = datasets.shapes_dataset(config.data, config.seed)
    trainer = vae.make(config, data.event_shape)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json(indent=2))
    start = time.perf_counter()
    final = train_and_evaluate(config, workdir, trainer=trainer, data=data)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    params, step = restore_params(config, workdir, trainer, take(data.train, slice(2)))
    images, factors = shapes.load()
    mean, log_std = posterior_statistics(make_module(config), params, images)
    key = jax.random.fold_in(jax.random.key(config.seed), _METRICS_KEY)
    scores = disentanglement_scores(
        key,
        mean,
        factors,
        num_train=config.disentanglement.num_train,
        num_eval=config.disentanglement.num_eval,
    )
    _, gaps = mig(mean, factors)
    report = {
        **scores,
        "mig_gaps": dict(zip(shapes.FACTOR_NAMES, gaps.tolist(), strict=True)),
        "beta": float(config.model.beta),
        "step": int(step),
        "test_nll": final["test/nll"],
        "test_nll_standard_error": final["test/nll_standard_error"],
        "test_elbo_nll": final["test/elbo_nll"],
        **latent_activity(mean, log_std),
        "train_and_test_seconds": train_seconds,
        "metrics_seconds": time.perf_counter() - start,
    }
    with open(os.path.join(workdir, "disentanglement.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def summary(report: dict) -> str:
    """The report as text: scores, likelihood, and the latents by decreasing KL."""
    lines = [
        f"beta={report['beta']:g} at step {report['step']}",
        f"  beta-VAE metric {report['beta_vae']:.4f}   FactorVAE metric "
        f"{report['factor_vae']:.4f}   MIG {report['mig']:.4f}",
        "  MIG gaps: " + ", ".join(f"{k} {v:.3f}" for k, v in report["mig_gaps"].items()),
        f"  test NLL {report['test_nll']:.2f} +- {report['test_nll_standard_error']:.2f} nats, "
        f"-ELBO {report['test_elbo_nll']:.2f} nats",
        f"  active units {report['active_units']} (Var_x mu > {report['activity_threshold']:g})",
    ]
    order = np.argsort(report["kl_per_dim"])[::-1]
    lines += [
        f"    z{u}: KL {report['kl_per_dim'][u]:.3f} nats, Var_x mu {report['activity'][u]:.3f}"
        for u in order
    ]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    workdir = flags.FLAGS.workdir
    report = run(flags.FLAGS.config, workdir)
    print(summary(report))
    print(f"wrote {os.path.join(workdir, 'disentanglement.json')}")


if __name__ == "__main__":
    # Defined here rather than at import, so that tests can import this module beside
    # experiments/main.py, which defines flags of the same names.
    config_flags.DEFINE_config_file("config", None, "A vae_shapes.py config.")
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the report.")
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
