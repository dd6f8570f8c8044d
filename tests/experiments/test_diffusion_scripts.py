"""The diffusion result scripts run end to end in smoke mode (a few steps: the numbers mean
nothing, the tables' structure and the plumbing do) and reject bad arguments."""

import math

import pytest

from experiments import classifier_guidance, diffusion_digits, diffusion_toys


def _cells(text: str, first: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One smoke DDPM on the digits, trained by diffusion_digits and reused by the guidance."""
    tmp = tmp_path_factory.mktemp("ddpm_digits")
    out = tmp / "digits.md"
    text = diffusion_digits.main(
        ["--smoke", "--samplers=DDIM 10", f"--workdir={tmp / 'run'}", f"--out={out}"]
        + [f"--grid={tmp / 'grid.png'}"]
    )
    assert out.read_text() == text and (tmp / "grid.png").exists()
    return tmp, text


def test_digits_table_has_both_bounds_and_the_sampler_row(digits_run):
    _, text = digits_run
    bound = _cells(text, "variational bound, 20 steps, discretised decoder")
    ode = next(line for line in text.splitlines() if line.startswith("| probability-flow ODE"))
    ode_bpd = float(ode.strip("|").split("|")[1].split("±")[0])
    # bits/dim and nats/image are the same number in two units: nats = 64 ln 2 bits/dim.
    assert float(bound[2]) == pytest.approx(64 * math.log(2) * float(bound[1]), rel=1e-3)
    assert 0 < ode_bpd < 64 and 0 < float(bound[1]) < 64
    nfe = _cells(text, "DDIM 10")[1]
    assert nfe == str(diffusion_digits.SMOKE_STEPS["sample_steps"])


def test_guidance_reuses_the_model_and_reports_each_scale(digits_run):
    tmp, _ = digits_run
    text = classifier_guidance.main(
        ["--smoke", "--scales=0,2", f"--workdir={tmp / 'run'}", f"--out={tmp / 'g.md'}"]
        + ["--grid="]
    )
    for scale in ("0", "2"):
        share = float(_cells(text, scale)[1])
        assert 0.0 <= share <= 1.0
    assert text.count("t = ") == len(classifier_guidance.ACCURACY_AT)


def test_toys_table_has_ode_nll_and_bound(tmp_path):
    text = diffusion_toys.main(
        ["--smoke", "--toys=moons", "--models=ddpm"]
        + [f"--workdir={tmp_path}", f"--out={tmp_path / 'toys.md'}"]
    )
    cells = _cells(text, "moons")
    assert cells[1] == "ddpm" and all(math.isfinite(float(c)) for c in cells[3:6])


@pytest.mark.parametrize(
    "module, argv, match",
    [
        (diffusion_digits, ["--samplers=DDIM 7"], "--samplers"),
        (classifier_guidance, ["--scales=-1"], "--scales"),
        (classifier_guidance, ["--scales=a"], "--scales"),
        (diffusion_toys, ["--toys=spiral"], "--toys"),
        (diffusion_toys, ["--models=gan"], "--models"),
    ],
)
def test_bad_arguments_raise(module, argv, match):
    with pytest.raises(ValueError, match=match):
        module.main(argv)
