"""Every notebook executes top to bottom (in its smoke mode) without an error."""

import glob
import os

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def check_flows(outputs: str) -> None:
    assert "gap to the true entropy" in outputs
    integral = float(outputs.split("integral of the model density over the grid:")[1].split()[0])
    assert abs(integral - 1.0) < 2e-2, integral
    families = [line for line in outputs.splitlines() if "mass on the grid" in line]
    assert len(families) == 7, families
    for line in families:  # every family's NLL is finite and its density has mass
        nll = float(line.split("test NLL")[1].split()[0])
        assert np.isfinite(nll), line
    bpd = float(outputs.split("Glow test bits/dim:")[1].split()[0])
    assert 0.0 < bpd < np.log2(17) + 1, bpd


def check_samplers(outputs: str) -> None:
    # Block Gibbs against exact enumeration: total variation over 64 states from 2,000 chains
    # (the expected TV of an exact sample of that size is about 0.04).
    tv = float(outputs.split("total variation distance:")[1].split()[0])
    assert tv < 0.1, tv
    for line in outputs.splitlines():
        if line.startswith("ODE log p"):
            ode, exact = (float(part.split("=")[1]) for part in line.split("   "))
            assert abs(ode - exact) < 1e-2, line


def check_vae(outputs: str) -> None:
    # Per trained model: ELBO <= IWAE-50 <= importance-sampled log-likelihood, each up to Monte
    # Carlo error (4 standard errors of the IS mean, plus 0.05 nats for the two bounds' noise).
    checks = [line for line in outputs.splitlines() if line.strip().startswith("check:")]
    assert len(checks) == 3, checks
    for line in checks:
        values = dict(part.split("=") for part in line.split("check:")[1].split())
        elbo, iwae, ll, se = (float(values[k]) for k in ("elbo", "iwae", "is", "se"))
        assert all(np.isfinite([elbo, iwae, ll, se])), line
        assert elbo <= iwae + 0.05 and iwae <= ll + 4 * se + 0.05, line


def check_autoregressive(outputs: str) -> None:
    def value(label: str) -> float:
        lines = [line for line in outputs.splitlines() if line.startswith(label + ":")]
        assert len(lines) == 1, (label, lines)
        return float(lines[0].split(":")[1].split()[0])

    # Enumerating all 2^10 vectors of a random MADE: float32 sums of 1024 terms are good to ~1e-6.
    normalisation = value("normalisation")
    assert abs(normalisation - 1.0) < 1e-4, normalisation
    # Exact NLLs of binary 8x8 images are positive; the uniform model scores 64 ln 2 = 44.4 nats,
    # and even the smoke mode's 30 steps bring every model well below it (to about 25-35 nats).
    labels = ("MADE test NLL", "gated PixelCNN test NLL", "order-agnostic ensemble test NLL")
    for label in labels:
        nll = value(label)
        assert np.isfinite(nll) and 0.0 < nll < 64 * np.log(2), (label, nll)
    # Jensen: -log mean_m p_m(x) <= mean_m -log p_m(x) per example, hence for the test means.
    assert value(labels[2]) <= value("mean per-mask test NLL") + 1e-3


def check_gan(outputs: str) -> None:
    lines = {line.split(":")[0]: line for line in outputs.splitlines() if "modes covered" in line}
    names = ("data", "non_saturating", "least_squares", "hinge", "squared hinge (new)")
    assert sorted(lines) == sorted(names), lines
    for line in lines.values():
        covered = int(line.split("modes covered")[1].split("/")[0])
        share = float(line.split("high quality")[1].split()[0])
        assert 0 <= covered <= 8 and 0.0 <= share <= 1.0, line
    # The ground truth: exact samples of ring8 cover all 8 modes, 99.7% within 3 std in 2-D
    # Gaussians is 1 - exp(-4.5) = 98.9%.
    data = lines["data"]
    assert "8/8" in data and float(data.split("high quality")[1].split()[0]) > 0.97, data
    # The squared hinge's L_D is 2 for a discriminator that outputs 0 everywhere, 0 for one that
    # separates with margin 1; a finite value strictly between shows both players trained.
    d_loss = float(outputs.split("final discriminator loss:")[1].split()[0])
    assert 0.0 < d_loss < 4.0, d_loss


def fields(outputs: str, prefix: str) -> dict[str, dict[str, float]]:
    """Printed lines ``PREFIX name: key=value key=value ...`` as ``{name: {key: value}}``."""
    table = {}
    for line in outputs.splitlines():
        if line.startswith(prefix + " "):
            name, values = line[len(prefix) + 1 :].split(": ")
            table[name] = {k: float(v) for k, v in (part.split("=") for part in values.split())}
    return table


def check_energy_based(outputs: str) -> None:
    mode = outputs.split("mode:")[1].split()[0]
    entropy = float(outputs.split("true entropy")[1].split()[0])
    references, results = fields(outputs, "REFERENCE"), fields(outputs, "RESULT")
    names = (
        "max likelihood (PCD)",
        "denoising score matching",
        "noise contrastive",
        "short-run + gradient penalty (new)",
    )
    assert sorted(results) == sorted(names), results
    # A mixture of 8 equal Gaussians of std s = 0.5/1.414 has at most the entropy of disjoint ones,
    # log 8 + log(2 pi e s^2) = 2.838 nats; modes 6 std apart overlap little (jgen's quadrature
    # gives 2.832).
    bound = np.log(8) + np.log(2 * np.pi * np.e * (0.5 / 1.414) ** 2)
    assert bound - 0.02 < entropy <= bound, entropy
    # An exact sample's unbiased MMD^2 is 0 up to its sampling spread (about 5e-4 for the 1,000
    # points of the smoke mode, 1.3e-4 for 4,000).
    assert abs(references["exact"]["mmd2"]) < 2e-3, references
    for name, r in results.items():
        assert all(np.isfinite(list(r.values()))), (name, r)
        # With log Z by quadrature the model is a density normalised on the box, so its test NLL
        # estimates the cross-entropy H(p, q) >= H(p): the paired KL estimate is >= 0 up to 4
        # standard errors (and the midpoint rule's error); a wrong log Z breaks this.
        assert r["kl"] > -4 * r["kl_se"] - 1e-2, (name, r)
        # Even the smoke mode's 600 steps beat the uniform density on the box [-5, 5]^2 (NLL
        # log 100 = 4.61 nats) and the uniform noise the Langevin chains start from.
        assert r["nll"] < np.log(100.0) and r["mmd2"] < references["noise"]["mmd2"], (name, r)
        if mode == "full":  # 4,000 steps: every objective within 0.4 nats of the entropy
            assert r["kl"] < 0.4 and r["mmd2"] < 1e-2, (name, r)


def check_diffusion(outputs: str) -> None:
    mode = outputs.split("mode:")[1].split()[0]
    references, results = fields(outputs, "REFERENCE"), fields(outputs, "RESULT")
    names = (
        "simple, linear",
        "simple, cosine",
        "min-SNR-5, linear",
        "bound, importance-sampled (new)",
    )
    assert sorted(results) == sorted(names), results
    samplers = ("mmd2_ancestral", "mmd2_ddim50", "mmd2_ddim10")
    # An exact sample's unbiased MMD^2 against the fixed fresh sample spreads by 1.1e-3 over seeds
    # for the smoke mode's 500 points (4.6e-4 for the full mode's 2,000).
    assert abs(references["exact"]["mmd2"]) < (5e-3 if mode == "smoke" else 2e-3), references
    # In float64, L_t - lambda_t ||eps - eps_hat||^2 is the same for two networks to ~1e-13;
    # dropping the 1 / alpha_t from lambda_t would leave 7e-4.
    error = float(outputs.split("epsilon-form check: relative error=")[1].split()[0])
    assert error < 1e-9, error
    for name, r in {"untrained": references["untrained"], **results}.items():
        assert all(np.isfinite(list(r.values()))), (name, r)
        # The bound is >= -log p_model(x) at every point, so its test mean estimates a number
        # >= H(p, p_model) >= H(p): the gap to the true NLL on the same points is >= 0 up to 4
        # standard errors of its mean over the test points (0.05 nats for the smoke mode's 500,
        # 0.02 for 4,000); a wrong bound (a missing term, a wrong variance) breaks this. It holds
        # for the untrained network too.
        assert r["gap"] > -4 * r["gap_se"], (name, r)
    for name, r in results.items():
        # Even the smoke mode's 1,000 Adam steps beat the untrained network and the N(0, I) the
        # samplers start from, with every sampler.
        for sampler in samplers:
            assert r[sampler] < references["untrained"][sampler], (name, sampler, r)
            assert r[sampler] < references["noise"]["mmd2"], (name, sampler, r)
        if mode == "full":  # 10,000 steps: every gap below 0.35 nats, every MMD^2 below 2e-3
            assert r["gap"] < 0.5 and max(r[s] for s in samplers) < 5e-3, (name, r)
    assert results["simple, linear"]["delta"] == 0.0, results  # the baseline's paired difference
    if mode == "full":
        # Min-SNR divides the weight of the low-noise steps, where the bound lives, by up to
        # 2000: a worse bound on the same points (0.31 +- 0.01 nats), while training on the bound
        # cannot make it worse than L_simple's (-0.008 +- 0.002).
        min_snr, new = results["min-SNR-5, linear"], results["bound, importance-sampled (new)"]
        assert min_snr["delta"] > 4 * min_snr["delta_se"], min_snr
        assert new["delta"] < 4 * new["delta_se"], new


CHECKS = {
    "autoregressive.ipynb": check_autoregressive,
    "diffusion.ipynb": check_diffusion,
    "energy_based.ipynb": check_energy_based,
    "flows.ipynb": check_flows,
    "gan.ipynb": check_gan,
    "samplers.ipynb": check_samplers,
    "vae.ipynb": check_vae,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("JGEN_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": os.path.dirname(path)}}
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources=resources).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    CHECKS[os.path.basename(path)](outputs)


def test_every_notebook_has_its_checks():
    assert sorted(CHECKS) == sorted(os.path.basename(p) for p in NOTEBOOKS)
