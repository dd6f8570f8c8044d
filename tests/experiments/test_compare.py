"""The comparison table: one smoke run through a trained config restored from its best validation
state (the order-agnostic MADE ensemble, the cheapest such config to compile), a GMM (with 2-D
mode coverage) and the KDE, with the KDE row checked against a direct computation."""

import math
import re

import numpy as np
import pytest
from scipy.special import logsumexp

from experiments import compare
from experiments.configs import autoregressive_digits
from jgen.data import digits

TRAINED = "MADE (order-agnostic ensemble)"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "RESULTS.md"
    names = f"{TRAINED},GMM (full),KDE"
    workdir = str(out.parent / "runs")
    text = compare.main(["--smoke", "--only", names, "--workdir", workdir, "--out", str(out)])
    assert out.read_text() == text
    return text


def _row(table: str, model: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {model} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_every_requested_model_and_the_data_floor_have_a_row(table):
    for model in ("training digits (clean)", "training digits (binary)", TRAINED, "KDE"):
        row = _row(table, model)
        assert len(row) == 11
        assert math.isfinite(float(row[8])) and float(row[8]) > 0  # FID
    assert "SMOKE" in table
    assert re.search(r"ring8 \d/8, \d+% hq; grid25 \d+/25", _row(table, "GMM (full)")[10])
    # The trained row is the smoke config's: its estimator names the config's mask sets, and its
    # parameters are those of a MADE of the smoke widths (weights and biases of each dense layer,
    # 64 binary pixels in, 2 logits per pixel out).
    row = _row(table, TRAINED)
    config = autoregressive_digits.get_config("binary,made_agnostic,smoke")
    assert row[7] == f"exact (ensemble of {config.model.eval_masks})"
    widths = [64, *config.model.hidden_sizes, 2 * 64]
    num_params = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert int(row[2].replace(",", "")) == num_params


def test_kde_row_is_the_parzen_density_plus_the_dequantization_term(table):
    # The reference is a direct scipy logsumexp, not sklearn's KernelDensity: in 64-D at this
    # bandwidth every kernel value is below 1e-300, and sklearn's tree sums them in linear space
    # (its score here is off by ~10 nats; tests/metrics/test_kde.py compares with it where it
    # does not underflow).
    row = _row(table, "KDE")
    h = float(re.search(r"h=([0-9.]+)", row[7]).group(1))
    train = digits.load("continuous", "train")[0].reshape(-1, 64).astype(np.float64)
    test = digits.load("continuous", "test")[0].reshape(-1, 64).astype(np.float64)
    d2 = np.sum((test[:, None, :] - train[None]) ** 2, axis=-1)
    log_p = logsumexp(-d2 / (2 * h**2), axis=1) - math.log(len(train))
    log_p -= 32 * math.log(2 * math.pi * h**2)
    nll = -log_p.mean() + 64 * math.log(17)
    # The table prints h to 3 decimals and the NLL to 1: the NLL moves ~0.2 nats per 1e-3 of h.
    assert float(row[5]) == pytest.approx(nll, abs=0.5)
    assert float(row[6]) == pytest.approx(float(row[5]) / (64 * math.log(2)), abs=1e-3)


def test_unknown_model_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="--only takes names from"):
        compare.main(["--only", "DALL-E", "--out", str(tmp_path / "r.md")])


def test_merge_replaces_rows_by_name_and_keeps_the_others():
    def row(model, nll):
        return compare.Row(
            model, "binary", 10, 1.0, 0.1, nll, nll / 44, "exact", 1.0, 2.0, 0.5, "—"
        )

    first = compare.merge(None, [row("KDE", 150.0), row("RealNVP", 116.0)], "- run 1")
    second = compare.merge(first, [row("KDE", 140.0), row("VAE", 90.0)], "- run 2")
    names = [line.split("|")[1].strip() for line in second.splitlines() if line.startswith("| ")]
    assert names[2:] == ["RealNVP", "KDE", "VAE"]  # ENTRIES order, after the two header rows
    assert _row(second, "KDE")[5] == "140.0"
    assert _row(second, "RealNVP")[5] == "116.0"
    assert second.rstrip().endswith("- run 1\n- run 2")
