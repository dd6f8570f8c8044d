"""The cross-family comparison on the digits: every landed family's reference model, trained under
a stated budget, evaluated the same way, one row each in ``RESULTS.md``.

    python experiments/compare.py [--workdir=runs/compare] [--out=RESULTS.md] [--only=a,b]
                                  [--smoke]

Columns (all measured in this process, on this machine):

- parameters: trained scalars (for KDE, the stored training values);
- train time: wall seconds of fitting, compilation included;
- sample time: wall seconds to draw 1000 samples, after one warm-up call;
- test NLL in nats per image and bits/dim on the 447 test digits, with the estimator named: a
  continuous model of the dequantized digits reports ``-log p(y) + 64 log 17`` for one draw of the
  dequantization noise, an upper bound on the discrete NLL (Theis et al. 2016); a discrete model
  reports its exact NLL;
- FID and KID (mean ± std over 100 subsets) of 1000 samples against the test digits, with
  the features of the project's digits classifier (``jgen.metrics.digits_classifier``); samples of
  a continuous model are mapped to the clean scale by ``from_dequantized``, those of a binary
  model are compared with the binarised test digits;
- mode coverage on ``ring8`` and ``grid25``: the same family fitted to 2-D data, 2500 samples,
  modes covered and the share of high-quality samples (``jgen.metrics.coverage``).

The dispatch is the explicit dict ``ENTRIES``; a family that has not landed has no entry yet.
"""

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import run as run_experiment  # noqa: E402
from experiments.configs import (  # noqa: E402
    autoregressive_digits,
    dbn_digits,
    ddpm_digits,
    ddpm_toy2d,
    ebm_digits,
    flow_digits,
    flow_toy2d,
    gan_digits,
    gan_toy2d,
    rbm_digits,
    vae_digits,
    vqvae_digits,
)
from jgen.data import digits, toy2d  # noqa: E402
from jgen.data.batching import take  # noqa: E402
from jgen.losses.likelihood import bits_per_dim, dequantized_nll  # noqa: E402
from jgen.metrics import coverage, digits_classifier, fid, kde, mmd  # noqa: E402
from jgen.mixtures import bernoulli, gmm  # noqa: E402
from jgen.train import checkpoint  # noqa: E402
from jgen.train.state import tree_size  # noqa: E402

NUM_DIMS = 64
NUM_SAMPLES = 1000
NUM_COVERAGE_SAMPLES = 2500
COVERAGE_TOYS = ("ring8", "grid25")


class Fitted(NamedTuple):
    """A trained model as the table sees it.

    ``sample(key, n)`` returns ``n`` samples on the scale of the model's data; ``to_clean`` maps
    them to images in ``[0, 1]`` for the classifier; ``reference`` is the test-image variant they
    are compared with.
    """

    num_params: int
    train_seconds: float
    sample: Callable
    test_nll: float
    estimator: str
    to_clean: Callable
    reference: str = "clean"


class Row(NamedTuple):
    model: str
    data: str
    num_params: int
    train_seconds: float
    sample_seconds: float
    test_nll: float
    bits_per_dim: float
    estimator: str
    fid: float
    kid: float
    kid_std: float
    coverage: str


# --------------------------------------------------------------------------------------------
# Families


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - start


def train_and_restore(config, workdir: str) -> tuple[object, object, float, dict]:
    """Trains a config through the experiment layer and restores the state its test metrics
    come from: the last one, or the one selected on validation (``train.select_metric``)."""
    config.train.progress = False
    final, seconds = _timed(run_experiment.run, config, workdir)
    data = run_experiment.datasets.load(config.data, config.seed)
    trainer = run_experiment.MODELS[config.model.name](config, data.event_shape)
    example = take(data.train, slice(0, config.train.batch_size))
    like = jax.jit(trainer.init)(jax.random.key(0), example)
    selected = bool(config.train.select_metric)
    directory = os.path.join(workdir, "best" if selected else "checkpoints")
    state, step = checkpoint.restore_latest(checkpoint.make_manager(directory, 1), like)
    expected = final["selected_step"] if selected else config.train.num_steps
    if step != expected:
        raise RuntimeError(f"{directory} holds step {step}, expected {expected}")
    return trainer, state, seconds, final


def trainer_entry(
    get_config,
    arg: str,
    nll_metric: str,
    estimator: str,
    binary: bool = False,
    params_of: Callable = lambda state: state.params,
    to_clean: Callable | None = None,
):
    """A row for an experiment config ``get_config(arg)``, trained through the experiment layer;
    its test NLL is the final metric ``test/<nll_metric>``; ``estimator`` may name config fields
    (``str.format`` with ``config``); ``params_of(state)`` are the parameters counted;
    ``to_clean`` maps samples to clean images (default: the identity on binary digits, the
    dequantized levels' ``digits_classifier.from_dequantized`` otherwise)."""

    def fit(workdir: str, smoke: bool) -> Fitted:
        config = get_config(arg + (",smoke" if smoke else ""))
        trainer, state, seconds, final = train_and_restore(config, workdir)
        sample = jax.jit(trainer.sample, static_argnums=2)
        return Fitted(
            tree_size(params_of(state)),
            seconds,
            lambda key, n: sample(state, key, n),
            final[f"test/{nll_metric}"],
            estimator.format(config=config),
            to_clean or ((lambda x: x) if binary else digits_classifier.from_dequantized),
            "binary" if binary else "clean",
        )

    return fit


def flow_entry(family: str):
    return trainer_entry(
        flow_digits.get_config, family, "nll_discrete", "bound (dequantized, 1 draw)"
    )


def vae_entry(arg: str):
    """A VAE-family row on the binary digits; NLL by importance sampling."""
    estimator = "IS (k={config.model.eval_samples})"
    return trainer_entry(vae_digits.get_config, arg, "nll", estimator, binary=True)


def autoregressive_entry(arg: str):
    """An autoregressive row on the digits (``autoregressive_digits.py:arg``); exact NLL."""
    binary = arg.startswith("binary")
    ensemble = "agnostic" in arg
    estimator = "exact (ensemble of {config.model.eval_masks})" if ensemble else "exact"
    return trainer_entry(autoregressive_digits.get_config, arg, "nll", estimator, binary=binary)


def nearest_level(x: np.ndarray) -> np.ndarray:
    """Samples on the clean scale ``k / 16`` rounded to the nearest of the 17 levels (the bins of
    a discretised decoder)."""
    top = digits.NUM_LEVELS - 1
    return np.round(np.clip(np.asarray(x), 0.0, 1.0) * top) / top


def toy_coverage(get_config, arg: str) -> Callable[[str, str, bool], np.ndarray]:
    """The coverage samples of the config ``get_config(f"{toy},{arg}")`` trained on a 2-D toy."""

    def samples(toy: str, workdir: str, smoke: bool) -> np.ndarray:
        config = get_config(f"{toy},{arg}" + (",smoke" if smoke else ""))
        trainer, state, _, _ = train_and_restore(config, workdir)
        return np.asarray(trainer.sample(state, jax.random.key(1), NUM_COVERAGE_SAMPLES))

    return samples


def mmd2_to_data(toy: str, samples: np.ndarray, key) -> float:
    """Unbiased MMD^2 of ``samples`` to as many fresh points of ``toy`` (Gaussian kernel, the
    median-heuristic bandwidth of the data; Gretton et al. 2012)."""
    data = toy2d.sample(toy, key, len(samples))
    bandwidth = mmd.median_heuristic(data)
    return float(mmd.mmd2_unbiased(samples, data, mmd.gaussian_kernel(bandwidth)))


def unnormalised_entry(get_config, arg: str, why: str, params_of: Callable):
    """A row without a likelihood (a GAN, an EBM) on the clean digits, ``get_config(arg)``;
    ``why`` says why the NLL is missing, ``params_of(state)`` are the parameters counted."""

    def fit(workdir: str, smoke: bool) -> Fitted:
        config = get_config(arg + (",smoke" if smoke else ""))
        trainer, state, seconds, _ = train_and_restore(config, workdir)
        sample = jax.jit(trainer.sample, static_argnums=2)
        return Fitted(
            tree_size(params_of(state)),
            seconds,
            lambda key, n: sample(state, key, n),
            float("nan"),
            f"— ({why})",
            lambda x: np.clip(x, 0.0, 1.0),
        )

    return fit


def gan_entry(arg: str):
    """A GAN row on the clean digits (``gan_digits.py:arg``); the generator's parameters."""
    return unnormalised_entry(gan_digits.get_config, arg, "no likelihood", lambda s: s.g_params)


def ebm_entry(arg: str):
    """A deep-EBM row on the clean digits (``ebm_digits.py:arg``): ``log Z`` is unknown."""
    return unnormalised_entry(ebm_digits.get_config, arg, "unnormalised", lambda s: s.params)


def _digits64(variant: str) -> tuple[jax.Array, ...]:
    """Train, validation and test digits as ``(n, 64)`` float64 (call under ``enable_x64``)."""
    return tuple(
        jnp.asarray(digits.load(variant, s)[0].reshape(-1, NUM_DIMS), jnp.float64)
        for s in ("train", "validation", "test")
    )


def _float32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _select(candidates, score):
    """The candidate with the highest validation score."""
    return max(candidates, key=score)


def _gmm_params_count(k: int, d: int, covariance_type: str) -> int:
    cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]
    return (k - 1) + k * d + k * cov


def gmm_entry(covariance_type: str, ks=(1, 5, 10, 20, 40)) -> Callable[[str, bool], Fitted]:
    """EM on the continuous digits, the number of components chosen on validation likelihood."""

    def fit(workdir: str, smoke: bool) -> Fitted:
        del workdir
        with jax.enable_x64(True):
            train, validation, test = _digits64("continuous")
            key = jax.random.key(0)
            max_iter = 5 if smoke else 200

            def fit_k(k):
                return gmm.fit(key, train, k, covariance_type, max_iter=max_iter, reg_covar=1e-3)[0]

            start = time.perf_counter()
            fits = {k: fit_k(k) for k in (ks[:2] if smoke else ks)}
            k = _select(
                fits, lambda k: float(jnp.mean(gmm.log_prob(fits[k], validation, covariance_type)))
            )
            seconds = time.perf_counter() - start
            nll = -float(jnp.mean(gmm.log_prob(fits[k], test, covariance_type)))
        params = _float32(fits[k])

        def sample(key, n):
            return gmm.sample(params, key, n, covariance_type).reshape(n, *digits.IMAGE_SHAPE)

        return Fitted(
            _gmm_params_count(k, NUM_DIMS, covariance_type),
            seconds,
            sample,
            float(dequantized_nll(nll, NUM_DIMS, digits.NUM_LEVELS)),
            f"bound (dequantized, 1 draw); K={k}",
            digits_classifier.from_dequantized,
        )

    return fit


def kde_entry(workdir: str, smoke: bool) -> Fitted:
    """Gaussian Parzen window on the continuous digits, bandwidth chosen on validation."""
    del workdir
    bandwidths = np.geomspace(0.02, 0.3, 4 if smoke else 15)
    with jax.enable_x64(True):
        train, validation, test = _digits64("continuous")
        start = time.perf_counter()
        h, _ = kde.select_bandwidth(train, validation, bandwidths)
        seconds = time.perf_counter() - start
        nll = -float(jnp.mean(kde.log_prob(test, train, h)))
    h, train = float(h), np.asarray(train, np.float32)

    def sample(key, n):
        pick, noise = jax.random.split(key)
        idx = jax.random.randint(pick, (n,), 0, train.shape[0])
        x = jnp.asarray(train, jnp.float32)[idx] + h * jax.random.normal(noise, (n, NUM_DIMS))
        return x.reshape(n, *digits.IMAGE_SHAPE)

    return Fitted(
        train.size,
        seconds,
        sample,
        float(dequantized_nll(nll, NUM_DIMS, digits.NUM_LEVELS)),
        f"bound (dequantized, 1 draw); h={h:.3f}",
        digits_classifier.from_dequantized,
    )


def bernoulli_mixture_entry(workdir: str, smoke: bool, ks=(5, 10, 20, 40, 80)) -> Fitted:
    """EM for a mixture of Bernoullis on the binary digits, K chosen on validation."""
    del workdir
    with jax.enable_x64(True):
        train, validation, test = _digits64("binary")
        key = jax.random.key(0)
        start = time.perf_counter()
        fits = {
            k: bernoulli.fit(key, train, k, max_iter=5 if smoke else 200)[0]
            for k in (ks[:2] if smoke else ks)
        }
        k = _select(fits, lambda k: float(jnp.mean(bernoulli.log_prob(fits[k], validation))))
        seconds = time.perf_counter() - start
        nll = -float(jnp.mean(bernoulli.log_prob(fits[k], test)))
    params = _float32(fits[k])

    def sample(key, n):
        return bernoulli.sample(params, key, n).reshape(n, *digits.IMAGE_SHAPE)

    return Fitted(
        k - 1 + k * NUM_DIMS, seconds, sample, nll, f"exact; K={k}", lambda x: x, "binary"
    )


def gmm_coverage(toy: str, workdir: str, smoke: bool) -> np.ndarray:
    del workdir
    centres, _ = toy2d.mixture_modes(toy)
    x = jnp.asarray(toy2d.sample(toy, jax.random.key(0), 512 if smoke else 5000))
    params, _ = gmm.fit(jax.random.key(0), x, len(centres), "full", reg_covar=1e-6)
    return np.asarray(gmm.sample(params, jax.random.key(1), NUM_COVERAGE_SAMPLES, "full"))


ENTRIES: dict[str, tuple[Callable, Callable | None]] = {
    "RealNVP": (flow_entry("realnvp"), toy_coverage(flow_toy2d.get_config, "realnvp")),
    "Glow": (flow_entry("glow"), None),  # Glow's conv couplings need images
    "MAF": (flow_entry("maf"), toy_coverage(flow_toy2d.get_config, "maf")),
    "spline flow (coupling)": (flow_entry("spline"), toy_coverage(flow_toy2d.get_config, "spline")),
    "GMM (full)": (gmm_entry("full"), gmm_coverage),
    "GMM (diag)": (gmm_entry("diag"), None),
    "KDE": (kde_entry, None),
    "VAE": (vae_entry("binary"), None),
    "IWAE (k=5)": (vae_entry("binary,iwae5"), None),
    "IWAE (k=50)": (vae_entry("binary,iwae50"), None),
    "VAE + IAF (2 steps)": (vae_entry("binary,iaf"), None),
    "Ladder VAE (2 layers)": (vae_entry("binary,ladder"), None),
    "VQ-VAE (categorical prior)": (
        trainer_entry(vqvae_digits.get_config, "continuous", "nll", "bound (one-hot q)"),
        None,
    ),
    "VQ-VAE (PixelCNN prior)": (
        trainer_entry(vqvae_digits.get_config, "continuous,pixelcnn", "nll", "bound (one-hot q)"),
        None,
    ),
    "Bernoulli mixture": (bernoulli_mixture_entry, None),
    "MADE": (autoregressive_entry("binary,made"), None),
    "MADE (order-agnostic ensemble)": (autoregressive_entry("binary,made_agnostic"), None),
    "PixelCNN": (autoregressive_entry("binary,pixelcnn"), None),
    "gated PixelCNN": (autoregressive_entry("binary,gated_pixelcnn"), None),
    "transformer (64 pixels)": (autoregressive_entry("binary,transformer"), None),
    "MADE (17 levels)": (autoregressive_entry("levels17,made"), None),
    "gated PixelCNN (17 levels)": (autoregressive_entry("levels17,gated_pixelcnn"), None),
    "DCGAN (non-saturating)": (
        gan_entry("non_saturating"),
        toy_coverage(gan_toy2d.get_config, "non_saturating"),
    ),
    "DCGAN (hinge + SN)": (gan_entry("hinge,sn"), toy_coverage(gan_toy2d.get_config, "hinge,sn")),
    "RBM 64x16 (CD-1)": (
        trainer_entry(rbm_digits.get_config, "cd1", "nll", "exact", binary=True),
        None,
    ),
    "RBM 64x16 (PCD)": (
        trainer_entry(rbm_digits.get_config, "pcd", "nll", "exact", binary=True),
        None,
    ),
    "DBN 64-100-16": (
        trainer_entry(
            dbn_digits.get_config,
            "small",
            "nll_bound",
            "IS bound (k={config.model.eval_samples})",
            binary=True,
            params_of=lambda state: state.layers,
        ),
        None,
    ),
    "deep EBM (persistent Langevin)": (ebm_entry(""), None),
    "JEM": (ebm_entry("jem"), None),
    "DDPM (1000 ancestral steps)": (
        trainer_entry(
            ddpm_digits.get_config,
            "",
            "nll",
            "bound (T={config.model.diffusion_steps})",
            to_clean=nearest_level,
        ),
        toy_coverage(ddpm_toy2d.get_config, ""),
    ),
}


# --------------------------------------------------------------------------------------------
# Evaluation


def _reference(variant: str) -> np.ndarray:
    return digits.load("clean" if variant == "clean" else variant, "test")[0]


def sample_quality(params, samples: np.ndarray, reference: np.ndarray, key) -> tuple:
    """FID and KID (mean, std) of ``samples`` against ``reference`` with the classifier's
    features."""
    features = np.asarray(digits_classifier.features_and_logits(params, samples)[0], np.float64)
    ref = np.asarray(digits_classifier.features_and_logits(params, reference)[0], np.float64)
    with jax.enable_x64(True):
        f = float(fid.fid(features, ref))
        kid_mean, kid_std = fid.kid(features, ref, key, num_subsets=100, subset_size=NUM_SAMPLES)
    return f, float(kid_mean), float(kid_std)


def coverage_cell(samples_fn, workdir: str, smoke: bool) -> str:
    if samples_fn is None:
        return "—"
    cells = []
    for toy in COVERAGE_TOYS:
        centres, std = toy2d.mixture_modes(toy)
        samples = samples_fn(toy, os.path.join(workdir, toy), smoke)
        report = coverage.mode_coverage(samples, centres, std)
        cells.append(
            f"{toy} {int(report['modes_covered'])}/{len(centres)}, "
            f"{100 * float(report['high_quality']):.0f}% hq"
        )
    return "; ".join(cells)


def evaluate(name: str, workdir: str, smoke: bool, classifier) -> Row:
    fit, coverage_samples = ENTRIES[name]
    fitted = fit(os.path.join(workdir, "digits"), smoke)
    key = jax.random.key(2)
    jax.block_until_ready(fitted.sample(key, NUM_SAMPLES))  # compile
    samples, sample_seconds = _timed(fitted.sample, jax.random.fold_in(key, 1), NUM_SAMPLES)
    clean = np.asarray(fitted.to_clean(np.asarray(samples).reshape(-1, *digits.IMAGE_SHAPE)))
    quality = sample_quality(classifier, clean, _reference(fitted.reference), key)
    return Row(
        name,
        "binary" if fitted.reference == "binary" else "continuous",
        fitted.num_params,
        fitted.train_seconds,
        sample_seconds,
        fitted.test_nll,
        float(bits_per_dim(fitted.test_nll, NUM_DIMS)),
        fitted.estimator,
        *quality,
        coverage_cell(coverage_samples, os.path.join(workdir, "toy2d"), smoke),
    )


def data_rows(classifier) -> list[Row]:
    """The floor of the sample metrics: the training digits themselves against the test digits."""
    rows = []
    for variant in ("clean", "binary"):
        train = digits.load(variant, "train")[0]
        quality = sample_quality(classifier, train, _reference(variant), jax.random.key(2))
        data = "binary" if variant == "binary" else "continuous"
        rows.append(
            Row(
                f"training digits ({variant})",
                data,
                0,
                0,
                0,
                *[float("nan")] * 2,
                "—",
                *quality,
                "—",
            )
        )
    return rows


HEADER = (
    "# Results: every family on the digits\n\n"
    "`make compare` (`python experiments/compare.py`; `--only=NAME,...` re-measures some rows and "
    "keeps the others). Test split: 447 digits (DATA.md). NLL in nats per image; bits/dim = "
    "NLL / (64 ln 2). FID / KID: 1000 samples against the test digits, features of the "
    "project's digits classifier (test accuracy 0.96); KID mean ± std over 100 subsets (the "
    "features are not normalised, so KID is on their scale, not that of Inception features). "
    "Budgets: each flow's `experiments/configs/flow_digits.py:FAMILY` config (2500 steps), its "
    "2-D coverage run `flow_toy2d.py:TOY,FAMILY` (10,000 steps); the VAE family's "
    "`vae_digits.py:binary[,iwae5|iwae50|iaf|ladder]` and `vqvae_digits.py:continuous` (the state "
    "with the best validation NLL of 5000 steps); the autoregressive models' "
    "`autoregressive_digits.py:VARIANT,NETWORK` (the best validation NLL of 4000 steps, "
    "evaluated every 100; exact NLL; samples drawn one pixel per network pass, or through the "
    "transformer's cache); the GANs' `gan_digits.py:LOSS[,sn]` (DCGAN on the clean digits, "
    "10,000 generator steps, samples from the EMA generator; no likelihood) and their 2-D runs "
    "`gan_toy2d.py:TOY,LOSS[,sn]` (20,000 steps); the RBMs' `rbm_digits.py:cd1|pcd` (the best "
    "validation NLL of 10,000 updates; exact NLL) and the DBN's `dbn_digits.py:small` (10,000 "
    "updates per layer; importance-sampled bound); the deep EBM's and JEM's "
    "`ebm_digits.py[:jem]` (5000 updates with persistent Langevin chains; samples 100 Langevin "
    "steps from the replay buffer; no normalised likelihood); the DDPM's `ddpm_digits.py` (U-Net, "
    "6000 steps of 128 on the levels dequantized within their bins; the variational bound over "
    "1000 steps with a discretised decoder; 1000 ancestral steps per sample; its 2-D runs "
    "`ddpm_toy2d.py:TOY`, 10,000 steps); mixtures by EM to convergence (at "
    "most 200 iterations), K and the KDE bandwidth chosen on validation likelihood. Times are wall "
    "seconds on the machine of each run (listed below the table), compilation included; other "
    "jobs shared its cores, so they are upper bounds.\n\n"
    "| model | data | parameters | train (s) | sample 1000 (s) | test NLL (nats) | bits/dim "
    "| estimator | FID | KID | mode coverage |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n"
)
RUNS_HEADING = "Runs:"


def row_line(r: Row) -> str:
    """One table row; the model name is its first cell (the key for merging)."""

    def fmt(x, spec):
        return "—" if x != x else format(x, spec)

    return (
        f"| {r.model} | {r.data} | {r.num_params:,} | {r.train_seconds:.1f} | "
        f"{r.sample_seconds:.3f} | {fmt(r.test_nll, '.1f')} | {fmt(r.bits_per_dim, '.3f')} | "
        f"{r.estimator} | {r.fid:.1f} | {r.kid:.3g} ± {r.kid_std:.2g} | {r.coverage} |"
    )


def _model_name(line: str) -> str:
    return line.split("|")[1].strip()


def merge(previous: str | None, rows: list[Row], run_note: str) -> str:
    """The table with ``rows`` replacing same-named rows of ``previous`` (the text of an earlier
    RESULTS.md), in the order: data rows, then :data:`ENTRIES`; ``run_note`` joins the list of
    runs."""
    lines, notes = {}, []
    if previous:
        body, _, runs = previous.partition(RUNS_HEADING)
        lines = {_model_name(x): x for x in body.splitlines() if x.startswith("| ")}
        for header in ("model", "---"):
            lines.pop(header, None)
        notes = [x for x in runs.splitlines() if x.startswith("- ")]
    lines.update({r.model: row_line(r) for r in rows})
    order = [n for n in lines if n.startswith("training digits")] + list(ENTRIES)
    table = [lines[name] for name in order if name in lines]
    return (
        HEADER + "\n".join(table) + f"\n\n{RUNS_HEADING}\n\n" + "\n".join([*notes, run_note]) + "\n"
    )


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/compare")
    parser.add_argument("--out", default="RESULTS.md")
    parser.add_argument(
        "--only", default="", help="comma-separated model names; other rows of --out are kept"
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps per model (tests)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise ValueError(f"--only takes names from {list(ENTRIES)}; got {unknown}")
    start = time.perf_counter()
    classifier = digits_classifier.load()
    rows = data_rows(classifier)
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name}", flush=True)
        # A fresh directory per model: the experiment loop would resume from old checkpoints
        # and the train time would be wrong.
        workdir = os.path.join(args.workdir, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))
        shutil.rmtree(workdir, ignore_errors=True)
        rows.append(evaluate(name, workdir, args.smoke, classifier))
        print(rows[-1], flush=True)
    note = (
        f"- {time.strftime('%Y-%m-%d')}: {', '.join(names)}"
        f"{' (SMOKE: a few steps, the numbers mean nothing)' if args.smoke else ''}; "
        f"{jax.default_backend()}, {os.cpu_count()} cores, jax {jax.__version__}; "
        f"{(time.perf_counter() - start) / 60:.1f} min; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end."
    )
    previous = None
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            previous = f.read()
    text = merge(previous, rows, note)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    print(main())
