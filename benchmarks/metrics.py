"""Evaluation metrics and mixtures against their peers, in one process on the CPU: one EM
iteration of a Gaussian mixture against scikit-learn, Gaussian KDE scoring against scikit-learn,
and FID from features against pytorch-fid's numpy / scipy computation.

What each side computes (all inputs are built before the timing; jgen's functions are jitted and
take every array as an argument):

- **GMM, one EM iteration** (n = 10,000 float32 points; ``reg_covar = 1e-6``): both sides start
  from the same parameters (``jgen.mixtures.gmm.initialize``: k-means++ centres, one M-step from
  hard assignments) and return the next ones. jgen: ``jgen.mixtures.gmm.em_step`` (E-step
  responsibilities through the Cholesky factor of each covariance, M-step, mean
  log-likelihood). scikit-learn: the body of ``GaussianMixture.fit``'s loop, ``_e_step(X)``
  then ``_m_step(X, log_resp)`` (its M-step ends with the Cholesky factors of the new
  precisions, which its next E-step uses), on a model whose ``weights_``, ``means_`` and
  ``precisions_cholesky_`` are reset to the start before each call (three attribute
  assignments). These two methods are private, but they are exactly one iteration; no public
  method does one M-step. Second row: the public ``fit`` with ``max_iter=1``, ``tol=0`` and
  ``weights_init`` / ``means_init`` / ``precisions_init`` set to the start, which skips the
  k-means initialisation but adds input validation (an eigendecomposition per initial
  precision), the initial precision Cholesky factors and a final E-step (``fit`` always ends with
  one), so it is about one iteration plus one E-step. Data: D = 64, K = 20 from a random
  20-component mixture (``jgen.mixtures.gmm.sample``); D = 2, K = 25: ``grid25``
  (``jgen.data.toy2d``). The two sides' new parameters are checked to agree before timing.
- **KDE scoring**: jgen ``jgen.metrics.kde.log_prob(query, train, h)`` (float32, every pair's
  squared distance by one matrix product per chunk of 1,024 queries, then a logsumexp) against
  ``KernelDensity(kernel="gaussian", bandwidth=h).fit(train).score_samples(query)``, timed as a
  whole (building the tree is part of scikit-learn's cost). scikit-learn runs its defaults:
  ``algorithm="auto"`` (a KD tree for the Euclidean metric; ``KernelDensity`` has no brute-force
  option), ``atol=0``, ``rtol=0`` (which promise the exact sum; on the digits its tree misses
  by tens of nats on a quarter of the queries, see the error table and scikit-learn issues #7492
  and #27186), ``breadth_first=True``, ``leaf_size=40``, in float64. ``h`` maximises the
  validation likelihood (``jgen.metrics.kde.select_bandwidth``). Cases: the continuous digits
  (``jgen.data.digits``, 1,000 train x 447 test, D = 64) and ``moons``, 10,000 x 10,000 in
  D = 2. Both sides are checked against a brute-force float64 numpy evaluation.
- **FID from features**: jgen ``jgen.metrics.fid.fid`` (means, covariances by one matrix
  product, ``tr((C1 C2)^{1/2})`` from two symmetric eigendecompositions; float32, and float64
  under ``jax.enable_x64``) against pytorch-fid's ``calculate_activation_statistics`` +
  ``calculate_frechet_distance``: ``np.mean``, ``np.cov(rowvar=False)`` (float64),
  ``scipy.linalg.sqrtm(C1 @ C2, disp=False)`` (a Schur decomposition of the non-symmetric
  product; ``disp=False`` adds its residual check, as pytorch-fid asks for), the real part and
  the traces. Cases: the digits classifier's 128-d features (``jgen.metrics.digits_classifier``)
  of the 1,000 clean training digits against the same digits with N(0, 0.1²) pixel noise; and
  ReLU features of d = 2048, n = 10,000 per set (random projections of Gaussians, two slightly
  different sets). The float64 time is measured right after the paired float32 / peer timing;
  jgen's float64 value must match pytorch-fid's (its float32 value is reported as it comes).

Ratios are jgen time / peer time (< 1: jgen is faster), each pair measured interleaved
(``harness.paired_median_seconds``).

Threads: the main table runs with every OpenBLAS in the process limited to one thread
(``threadpoolctl``): numpy's (scikit-learn's matrix products, ``np.cov``) and scipy's (scipy.linalg,
and JAX's CPU LAPACK calls: Cholesky, triangular solves, eigendecompositions). XLA keeps its own
thread pool. On the 2-core machine shared with other jobs, OpenBLAS's default of one thread per
core made every library that calls it erratic and many times slower (its worker threads spin
while waiting and compete with XLA's and with other processes); the last table repeats the cases
that call BLAS with the default threads, for the record.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/metrics.py``); results in BENCHMARKS.md.
"""

import functools
import os
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.linalg
import scipy.special
import sklearn
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from threadpoolctl import ThreadpoolController

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402

sys.path.insert(0, harness.ROOT)
from jgen.data import digits, toy2d  # noqa: E402
from jgen.metrics import digits_classifier, kde  # noqa: E402
from jgen.metrics.fid import fid  # noqa: E402
from jgen.mixtures import gmm  # noqa: E402

N_GMM, REG_COVAR = 10_000, 1e-6
GMM_CASES = [(64, 20, "full"), (64, 20, "diag"), (2, 25, "full"), (2, 25, "diag")]
BANDWIDTHS = np.geomspace(0.01, 1.0, 21)
# Paired repeats per case, so that the whole script stays within a few minutes: the d = 2048 FID
# peer takes ~30 s a call on two cores.
REPEATS = {"cheap": 21, "medium": 7, "fid2048": 1}

EM_STEP = jax.jit(gmm.em_step, static_argnames="covariance_type")
KDE_LOG_PROB = jax.jit(kde.log_prob)
FID = jax.jit(fid)


# ---------------------------------------------------------------------------------------------
# GMM
# ---------------------------------------------------------------------------------------------


def gmm_data(d: int, k: int, key) -> np.ndarray:
    """``N_GMM`` float32 points: ``grid25`` in 2-D, else a random ``k``-component mixture."""
    if d == 2:
        return toy2d.sample("grid25", key, N_GMM)
    k_means, k_cov, k_draw = jax.random.split(key, 3)
    factors = jax.random.normal(k_cov, (k, d, d)) / np.sqrt(d)
    truth = gmm.GMMParams(
        jnp.full((k,), -np.log(k)),
        3.0 * jax.random.normal(k_means, (k, d)),
        0.5 * factors @ jnp.swapaxes(factors, 1, 2) + 0.5 * jnp.eye(d),
    )
    return np.asarray(gmm.sample(truth, k_draw, N_GMM, "full"))


def sklearn_mixture(start: gmm.GMMParams, x: np.ndarray, covariance_type: str):
    """A GaussianMixture whose ``fit`` runs one iteration from ``start``, and ``start`` in its
    own parametrisation (weights, means, precision Cholesky factors) for ``_e_step``."""
    covariances = np.asarray(start.covariances, np.float64)
    if covariance_type == "full":
        precisions = np.linalg.inv(covariances)
        precisions = (precisions + np.swapaxes(precisions, 1, 2)) / 2
    else:
        precisions = 1.0 / covariances
    model = GaussianMixture(
        start.means.shape[0],
        covariance_type=covariance_type,
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=1,
        weights_init=np.exp(np.asarray(start.log_weights)),
        means_init=np.asarray(start.means),
        precisions_init=precisions.astype(np.float32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration "did not converge"
        model.fit(x)  # validates the *_init arrays
    model._initialize(x, None)  # back to the start
    return model, (model.weights_, model.means_, model.precisions_cholesky_)


def sklearn_iteration(model, start, x):
    """``GaussianMixture.fit``'s loop body, from ``start``; returns the mean log-likelihood."""
    model.weights_, model.means_, model.precisions_cholesky_ = start
    log_prob_norm, log_resp = model._e_step(x)
    model._m_step(x, log_resp)
    return log_prob_norm


def sklearn_fit(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x)


def check_gmm(name: str, ours, model, start, x) -> str:
    """jgen's and scikit-learn's iterates from the same start agree (both float32)."""
    new, mean_ll = ours()
    peer_ll = sklearn_iteration(model, start, x)
    pairs = {
        "weights": (np.exp(new.log_weights), model.weights_),
        "means": (new.means, model.means_),
        "covariances": (new.covariances, model.covariances_),
    }
    # Covariances are E[x x^T] - mu mu^T in float32 (scikit-learn's diagonal update expands the
    # square, as jgen's does), so their rounding error scales with the second moment, not with
    # the variance: grid25's variances are ~1e-4 of its squared means.
    scale = {"covariances": np.max(np.abs(model.covariances_)) + np.max(model.means_**2)}
    errors = {
        field: float(np.max(np.abs(a - b)) / scale.get(field, np.max(np.abs(b))))
        for field, (a, b) in pairs.items()
    }
    errors["mean log-likelihood"] = abs(float(mean_ll) - float(peer_ll)) / abs(float(peer_ll))
    summary = ", ".join(f"{field} {error:.0e}" for field, error in errors.items())
    print(f"GMM {name}, relative differences: {summary}", flush=True)
    if max(errors.values()) > 1e-3:
        raise AssertionError(f"{name}: jgen and scikit-learn iterates differ: {summary}")
    return summary


def gmm_rows(key) -> tuple[list[str], list[str], dict]:
    """Table rows, agreement rows, and the pairs to time again with default threads."""
    rows, checks, again = [], [], {}
    for i, (d, k, covariance_type) in enumerate(GMM_CASES):
        x = gmm_data(d, k, jax.random.fold_in(key, i))
        start = gmm.initialize(jax.random.fold_in(key, 100 + i), jnp.asarray(x), k, covariance_type)
        model, sk_start = sklearn_mixture(start, x, covariance_type)
        ours = functools.partial(EM_STEP, start, jnp.asarray(x), covariance_type)
        name = f"{covariance_type}, D = {d}, K = {k}"
        checks.append(f"| {name} | {check_gmm(name, ours, model, sk_start, x)} |")
        repeats = REPEATS["medium" if (covariance_type, d) == ("full", 64) else "cheap"]
        iteration = functools.partial(sklearn_iteration, model, sk_start, x)
        peers = {
            "sklearn `_e_step` + `_m_step`": iteration,
            "sklearn `fit(max_iter=1)`": functools.partial(sklearn_fit, model, x),
        }
        for peer, theirs in peers.items():
            t_ours, t_peer = harness.paired_median_seconds(ours, theirs, repeats=repeats)
            rows.append(row(f"GMM EM iteration, {name}", peer, t_ours, t_peer))
        if d == 64 or covariance_type == "full":
            again[f"GMM EM iteration, {name}"] = ("sklearn `_e_step` + `_m_step`", ours, iteration)
    return rows, checks, again


# ---------------------------------------------------------------------------------------------
# KDE
# ---------------------------------------------------------------------------------------------


def kde_cases(key) -> dict[str, tuple]:
    """``{name: (train, validation, query)}`` as flat float32 arrays."""
    flat = lambda split: digits.load("continuous", split)[0].reshape(-1, 64)
    k_train, k_val, k_query = jax.random.split(key, 3)
    return {
        "digits (continuous), 1000 train x 447 test, D = 64": (
            flat("train"),
            flat("validation"),
            flat("test"),
        ),
        "moons, 10000 x 10000, D = 2": (
            toy2d.sample("moons", k_train, 10_000),
            toy2d.sample("moons", k_val, 1_000),
            toy2d.sample("moons", k_query, 10_000),
        ),
    }


def sklearn_kde(train, query, bandwidth):
    return KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(train).score_samples(query)


def exact_log_kde(query: np.ndarray, train: np.ndarray, bandwidth: float) -> np.ndarray:
    """The Gaussian KDE log-density by brute force in float64 numpy, 500 queries at a time."""
    train = train.astype(np.float64)
    dim = train.shape[1]
    out = []
    for chunk in np.array_split(query.astype(np.float64), max(1, len(query) // 500)):
        sq = np.sum(chunk**2, 1)[:, None] + np.sum(train**2, 1)[None, :] - 2 * chunk @ train.T
        out.append(scipy.special.logsumexp(-np.maximum(sq, 0) / (2 * bandwidth**2), axis=1))
    norm = np.log(len(train)) + 0.5 * dim * np.log(2 * np.pi * bandwidth**2)
    return np.concatenate(out) - norm


def kde_rows(key) -> tuple[list[str], list[str]]:
    """Table rows, and rows of both sides' errors against the brute-force float64 value."""
    rows, errors = [], []
    for name, (train, validation, query) in kde_cases(key).items():
        bandwidth, _ = kde.select_bandwidth(train, validation, BANDWIDTHS)
        bandwidth = float(bandwidth)
        ours = functools.partial(KDE_LOG_PROB, jnp.asarray(query), jnp.asarray(train), bandwidth)
        theirs = functools.partial(sklearn_kde, train, query, bandwidth)
        exact = exact_log_kde(query, train, bandwidth)
        error_ours = np.abs(np.asarray(ours()) - exact)
        error_peer = np.abs(theirs() - exact)
        errors.append(
            f"| {name} | {bandwidth:.3g} | {np.max(np.abs(exact)):.3g} | {error_ours.max():.1e} "
            f"| {error_peer.max():.1e} | {np.sum(error_peer > 1e-3)} of {len(query)} |"
        )
        print(errors[-1], flush=True)
        # float32 distances: |x|^2 rounds at ~1e-7 of itself, divided by 2 h^2.
        if error_ours.max() > 1e-5 * np.max(np.abs(exact)) + 1e-3:
            raise AssertionError(f"KDE {name}: jgen is off by {error_ours.max()}")
        repeats = REPEATS["medium" if len(query) > 1000 else "cheap"]
        t_ours, t_peer = harness.paired_median_seconds(ours, theirs, repeats=repeats)
        rows.append(row(f"KDE log-density, {name}", "sklearn KernelDensity", t_ours, t_peer))
    return rows, errors


# ---------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------


def pytorch_fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """pytorch-fid 0.3's ``calculate_activation_statistics`` and ``calculate_frechet_distance``
    (its ``eps`` fallback and imaginary-part check included)."""
    mu1, sigma1 = np.mean(features1, axis=0), np.cov(features1, rowvar=False)
    mu2, sigma2 = np.mean(features2, axis=0), np.cov(features2, rowvar=False)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy 1.17 deprecates disp
        covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def relu_features(key, n: int, d: int, shift: float) -> np.ndarray:
    """``relu(z A / sqrt(d) + shift)``: non-negative, correlated, like pooled CNN features;
    ``A`` is shared by both sets (fixed key), ``z`` is not."""
    mixing = jax.random.normal(jax.random.key(7), (d, d)) / np.sqrt(d)
    return np.asarray(jax.nn.relu(jax.random.normal(key, (n, d)) @ mixing + shift))


def fid_cases(key) -> dict[str, tuple]:
    images = digits.load("clean", "train")[0]
    noisy = np.clip(images + 0.1 * np.random.default_rng(0).standard_normal(images.shape), 0, 1)
    params = digits_classifier.load()
    features = lambda x: np.asarray(digits_classifier.features_and_logits(params, x)[0])
    k1, k2 = jax.random.split(key)
    return {
        "digits classifier features, d = 128, n = 1000": (
            features(images),
            features(noisy.astype(np.float32)),
        ),
        "ReLU features, d = 2048, n = 10000": (
            relu_features(k1, 10_000, 2048, 0.0),
            relu_features(k2, 10_000, 2048, 0.05),
        ),
    }


def fid_float64(features1: np.ndarray, features2: np.ndarray):
    with jax.enable_x64(True):
        return FID(jnp.asarray(features1, jnp.float64), jnp.asarray(features2, jnp.float64))


def fid_rows(key) -> tuple[list[str], list[str], dict]:
    """Table rows, accuracy rows, and the pairs to time again with default threads."""
    rows, accuracy, again = [], [], {}
    for name, (f1, f2) in fid_cases(key).items():
        ours = functools.partial(FID, jnp.asarray(f1), jnp.asarray(f2))
        theirs = functools.partial(pytorch_fid, f1, f2)
        ours64 = functools.partial(fid_float64, f1, f2)
        repeats = REPEATS["fid2048" if f1.shape[1] == 2048 else "cheap"]
        t_ours, t_peer = harness.paired_median_seconds(ours, theirs, repeats=repeats)
        t_ours64 = harness.median_seconds(ours64, repeats=max(repeats, 2), warmup=1)
        rows.append(row(f"FID, {name}", "pytorch-fid (numpy / scipy)", t_ours, t_peer))
        peer, value32, value64 = theirs(), float(ours()), float(ours64())
        rel32, rel64 = abs(value32 - peer) / peer, abs(value64 - peer) / peer
        accuracy.append(
            f"| {name} | {peer:.6g} | {value32:.6g} ({rel32:.1e}) | {value64:.10g} ({rel64:.1e}) "
            f"| {1e3 * t_ours64:.1f} | {t_ours64 / t_peer:.2f} |"
        )
        print(accuracy[-1], flush=True)
        # float32 is reported as it comes (FID cancels traces ~100x its value); float64 must
        # agree, or the two sides do not compute the same quantity.
        if rel64 > 1e-4:
            raise AssertionError(f"FID {name}: jgen {value64} against pytorch-fid {peer}")
        if repeats > 1:  # the d = 2048 peer is too slow to time twice
            again[f"FID, {name}"] = ("pytorch-fid (numpy / scipy)", ours, theirs)
    return rows, accuracy, again


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def row(case: str, peer: str, t_ours: float, t_peer: float) -> str:
    line = f"| {case} | {peer} | {1e3 * t_ours:.2f} | {1e3 * t_peer:.2f} | {t_ours / t_peer:.2f} |"
    print(line, flush=True)
    return line


def default_thread_rows(pairs: dict) -> list[str]:
    """The pairs timed again with OpenBLAS's default threads (the caller lifts the limit)."""
    rows = []
    for name, (peer, ours, theirs) in pairs.items():
        t_ours, t_peer = harness.paired_median_seconds(ours, theirs, repeats=3)
        rows.append(row(name, peer, t_ours, t_peer))
    return rows


def main():
    load_before = os.getloadavg()[0]
    key = jax.random.key(0)
    controller = ThreadpoolController()  # after numpy's and scipy's OpenBLAS are loaded
    # Named by the package that ships them: numpy.libs/..., scipy.libs/...
    blas = {
        lib.filepath.rsplit("/", 2)[-2].removesuffix(".libs"): lib.num_threads
        for lib in controller.lib_controllers
        if lib.user_api == "blas"
    }
    with controller.limit(limits=1, user_api="blas"):
        gmm_table, gmm_checks, gmm_again = gmm_rows(jax.random.fold_in(key, 0))
        kde_table, kde_errors = kde_rows(jax.random.fold_in(key, 1))
        fid_table, fid_accuracy, fid_again = fid_rows(jax.random.fold_in(key, 2))
    default_table = default_thread_rows({**gmm_again, **fid_again})
    harness.write_section(
        "Metrics",
        [
            f"`make bench` on {harness.machine()}; jax {jax.__version__}, scikit-learn "
            f"{sklearn.__version__}, scipy {scipy.__version__}, numpy {np.__version__}. What each "
            "side computes (and why scikit-learn's EM iteration is timed through `_e_step` + "
            "`_m_step`) is in the docstring of `benchmarks/metrics.py`. Times: medians of one "
            "call (ms), jgen (jitted, float32) and the peer measured interleaved; **jgen / peer "
            "< 1: jgen is faster**. OpenBLAS (numpy's, and scipy's, which JAX's CPU LAPACK calls "
            "use) limited to one thread, XLA with its default thread pool. 1-minute load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run (other jobs "
            "shared the cores), so compare ratios rather than absolute times.",
            "",
            "| case | peer | jgen (ms) | peer (ms) | jgen / peer |",
            "| --- | --- | --- | --- | --- |",
            *gmm_table,
            *kde_table,
            *fid_table,
            "",
            "KDE: both sides against the brute-force float64 log-density (numpy), max absolute "
            "error, and the number of queries where scikit-learn's tree is off by more than "
            "1e-3 nats (its default `rtol=0`, `atol=0` promise an exact result; scikit-learn "
            "issues #7492, on these digits, and #27186):",
            "",
            "| case | h | largest abs. log-density | jgen error | sklearn error | sklearn off |",
            "| --- | --- | --- | --- | --- | --- |",
            *kde_errors,
            "",
            "GMM: one iteration from the same start, max |jgen - sklearn| relative to the largest "
            "value (covariances: to the largest second moment) of the new parameters and of the "
            "mean log-likelihood (both float32):",
            "",
            "| case | relative differences |",
            "| --- | --- |",
            *gmm_checks,
            "",
            "FID: pytorch-fid's value (float64 statistics) against jgen's in float32 and in "
            "float64 (`jax.enable_x64`), relative differences in brackets; the float64 time is "
            "a median of its own, taken right after the float32 / peer pair:",
            "",
            "| case | pytorch-fid | jgen float32 | jgen float64 | jgen float64 (ms) "
            "| jgen float64 / peer |",
            "| --- | --- | --- | --- | --- | --- |",
            *fid_accuracy,
            "",
            "The same pairs with OpenBLAS's default threads "
            f"({', '.join(f'{name} {n}' for name, n in blas.items())}), 3 repeats: the spinning "
            "OpenBLAS workers compete with XLA's threads and the other jobs for the two cores.",
            "",
            "| case | peer | jgen (ms) | peer (ms) | jgen / peer |",
            "| --- | --- | --- | --- | --- |",
            *default_table,
        ],
    )


if __name__ == "__main__":
    main()
