"""Batches are a pure function of (seed, step): epochs are permutations, resumes are exact."""

import itertools

import jax
import numpy as np
import pytest

from jgen.data.batching import batch_indices, padded_batches, to_global_array, train_batches
from jgen.train.parallel import batch_sharding, make_mesh


def test_each_epoch_visits_every_kept_example_once_in_a_new_order():
    n, b = 103, 10  # 10 steps per epoch, 3 examples dropped each epoch
    epochs = [
        np.concatenate(
            [
                batch_indices(s, num_examples=n, batch_size=b, seed=7)
                for s in range(e * 10, e * 10 + 10)
            ]
        )
        for e in range(3)
    ]
    for order in epochs:
        assert len(order) == 100 and len(set(order.tolist())) == 100
    assert not np.array_equal(epochs[0], epochs[1])


def test_resuming_at_a_step_gives_the_same_batches():
    data = np.arange(50, dtype=np.float32)[:, None]
    straight = [b for _, b in itertools.islice(train_batches(data, 8, seed=3), 20)]
    resumed = [b for _, b in itertools.islice(train_batches(data, 8, seed=3, start_step=13), 7)]
    for a, b in zip(straight[13:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    other = [b for _, b in itertools.islice(train_batches(data, 8, seed=4), 1)]
    assert not np.array_equal(other[0], straight[0])


def test_batches_are_sharded_over_the_mesh():
    mesh = make_mesh(8)
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    _, batch = next(train_batches(data, 16, seed=0, sharding=batch_sharding(mesh)))
    assert isinstance(batch, jax.Array) and batch.shape == (16, 2)
    assert len(batch.addressable_shards) == 8
    assert all(s.data.shape == (2, 2) for s in batch.addressable_shards)
    np.testing.assert_array_equal(
        np.asarray(batch), data[batch_indices(0, num_examples=64, batch_size=16, seed=0)]
    )
    np.testing.assert_array_equal(to_global_array(data, None), data)


def test_padded_batches_cover_the_data_in_order():
    data = np.arange(10)
    out = list(padded_batches(data, 4))
    assert [n for _, n in out] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[:n] for b, n in out]), data)
    np.testing.assert_array_equal(out[-1][0], [8, 9, 9, 9])


def test_bad_batch_size_is_an_error():
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 5\].*got 6"):
        batch_indices(0, num_examples=5, batch_size=6, seed=0)
    with pytest.raises(ValueError, match=r"num_devices must be in \[0, 8\].*got 9"):
        make_mesh(9)
