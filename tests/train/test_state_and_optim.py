"""The generic step, the optimizer builder and the metric writer against hand-computed values."""

import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from jgen.train.logging import MetricWriter, read_metrics
from jgen.train.optim import make_optimizer, make_schedule
from jgen.train.state import create_state, eval_params, make_step


def quadratic_loss(params, batch, key):
    del key
    residual = params["w"] - batch
    return 0.5 * jnp.mean(jnp.sum(residual**2, -1)), {"sq": jnp.sum(residual**2, -1)}


def test_sgd_step_with_ema_matches_the_formulas():
    params = {"w": jnp.array([1.0, -2.0])}
    batch = jnp.array([[0.0, 0.0], [2.0, 2.0]])
    opt = make_optimizer("sgd", 0.1)
    step = make_step(quadratic_loss, opt, ema_decay=0.9)
    state, metrics = step(create_state(params, opt, 0.9), batch, None)
    grad = params["w"] - batch.mean(0)  # d/dw of the mean squared distance / 2
    expected = params["w"] - 0.1 * grad
    np.testing.assert_allclose(state.params["w"], expected, rtol=1e-6)
    np.testing.assert_allclose(state.ema_params["w"], 0.9 * params["w"] + 0.1 * expected, rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(grad), rtol=1e-6)
    np.testing.assert_allclose(metrics["sq"], np.mean(np.sum((params["w"] - batch) ** 2, -1)))
    assert int(state.step) == 1
    assert eval_params(state) is state.ema_params
    no_ema = create_state(params, opt, 0.0)
    assert no_ema.ema_params is None and eval_params(no_ema) is no_ema.params


def test_gradient_clipping_bounds_the_update():
    params = {"w": jnp.array([100.0, 0.0])}
    opt = make_optimizer("sgd", 1.0, grad_clip=2.0)
    state, metrics = make_step(quadratic_loss, opt)(
        create_state(params, opt, 0.0), jnp.zeros((1, 2)), None
    )
    assert float(metrics["grad_norm"]) == pytest.approx(100.0)  # reported before clipping
    np.testing.assert_allclose(state.params["w"], [98.0, 0.0], rtol=1e-6)


def test_warmup_then_cosine_schedule():
    lr = make_schedule(1e-2, "cosine", warmup_steps=10, num_steps=110)
    assert float(lr(0)) == 0.0
    assert float(lr(5)) == pytest.approx(5e-3)
    assert float(lr(10)) == pytest.approx(1e-2)
    assert float(lr(60)) == pytest.approx(1e-2 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-9)
    linear = make_schedule(1.0, "linear", warmup_steps=0, num_steps=4)
    assert [float(linear(i)) for i in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_adamw_applies_decoupled_weight_decay():
    params = {"w": jnp.array([3.0])}
    opt = make_optimizer("adamw", 0.1, weight_decay=0.5)
    updates, _ = opt.update({"w": jnp.zeros(1)}, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 3.0, rtol=1e-6)


def test_adam_betas_follow_the_update_formula():
    # Two Adam steps by hand (Kingma & Ba 2015) with b1 = 0.5, b2 = 0.9, eps = 1e-8.
    lr, b1, b2, grads = 0.1, 0.5, 0.9, [np.array([1.0, -2.0]), np.array([3.0, 0.5])]
    opt = make_optimizer("adam", lr, b1=b1, b2=b2)
    params = {"w": jnp.zeros(2)}
    state = opt.init(params)
    m = v = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        updates, state = opt.update({"w": jnp.asarray(g)}, state, params)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        expected = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
        np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_bad_optimizer_settings_are_errors():
    with pytest.raises(ValueError, match="optim.name must be one of .*; got 'adan'"):
        make_optimizer("adan", 1e-3)
    with pytest.raises(ValueError, match="optim.schedule must be one of .*; got 'cosin'"):
        make_optimizer("adam", 1e-3, schedule="cosin")
    with pytest.raises(ValueError, match="weight_decay needs optim.name='adamw'"):
        make_optimizer("adam", 1e-3, weight_decay=0.1)


def read_tensorboard_scalars(directory):
    """Parses TFRecord-framed Event protos (length, crc, data, crc) without TensorFlow."""
    scalars = []
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.append((event.step, value.tag, value.simple_value))
    return scalars


def test_metric_writer_writes_jsonl_and_tensorboard_and_truncates_on_resume(tmp_path):
    writer = MetricWriter(str(tmp_path))
    for step in (1, 2, 3):
        writer.write(step, {"train/loss": 1.0 / step})
    writer.close()
    scalars = read_tensorboard_scalars(tmp_path / "tensorboard")
    assert sorted(scalars) == [(s, "train/loss", pytest.approx(1.0 / s)) for s in (1, 2, 3)]

    MetricWriter(str(tmp_path), resume_step=2).close()  # resumed from checkpoint 2
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2]
    MetricWriter(str(tmp_path)).close()  # a fresh run starts a fresh file
    assert not (tmp_path / "metrics.jsonl").exists()


def test_make_step_composes_with_jit_and_donation():
    params = {"w": jnp.ones(2)}
    opt = make_optimizer("adam", 1e-2)
    step = jax.jit(make_step(quadratic_loss, opt), donate_argnums=0)
    state = create_state(params, opt, 0.0)
    for _ in range(3):
        state, _ = step(state, jnp.zeros((4, 2)), None)
    assert int(state.step) == 3 and float(state.params["w"][0]) < 1.0
