"""The GAN mode-coverage table: its scores on exact and collapsed samples, and one smoke run."""

import jax
import numpy as np
import pytest

from experiments import gan_coverage
from jgen.data import toy2d


@pytest.mark.parametrize("toy", gan_coverage.TOYS)
def test_exact_samples_cover_every_mode_and_a_collapsed_sampler_one(toy):
    centres, std = toy2d.mixture_modes(toy)
    exact = toy2d.sample(toy, jax.random.key(0), 2500)
    report = gan_coverage.score(toy, exact, jax.random.key(1))
    assert report["modes"] == len(centres)
    # 2-D Gaussian: P(|x - mu| <= 3 std) = 1 - exp(-9 / 2) = 0.989; 2500 samples: SE 0.002.
    assert report["high_quality"] == pytest.approx(1 - np.exp(-4.5), abs=0.01)
    # Unbiased MMD^2 of two exact samples is centred on 0 (|value| ~ 1e-3 at this size).
    assert abs(report["mmd2"]) < 5e-3
    rng = np.random.default_rng(0)
    collapsed = centres[0] + std * rng.standard_normal((2500, 2))
    bad = gan_coverage.score(toy, collapsed.astype(np.float32), jax.random.key(1))
    assert bad["modes"] == 1 and bad["mmd2"] > 100 * abs(report["mmd2"])


def test_smoke_table_has_a_row_per_variant_and_three_cells_per_toy(tmp_path):
    out = tmp_path / "coverage.md"
    text = gan_coverage.main(
        ["--smoke", "--seeds=1", "--variants=hinge+sn", "--toys=grid25"]
        + [f"--workdir={tmp_path}", f"--out={out}"]
    )
    assert out.read_text() == text
    row = next(line for line in text.splitlines() if line.startswith("| hinge + sn |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "grid25: modes (of 25)" in text and "ring8" not in text
    assert len(cells) == 4
    assert (
        0 <= float(cells[1]) <= 25 and cells[2].endswith("%") and float(cells[3]) == float(cells[3])
    )
    with pytest.raises(ValueError, match="--seeds"):
        gan_coverage.main(["--seeds=0"])
    with pytest.raises(ValueError, match="--toys"):
        gan_coverage.main(["--toys=moons"])
