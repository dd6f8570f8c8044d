"""Batches are a pure function of (seed, step): epochs are permutations, resumes are exact."""

import itertools

import jax
import numpy as np
import pytest

from jgen.data.batching import batch_indices, padded_batches, to_global_array, train_batches
from jgen.data.dataset import Dataset, check_split, inputs, num_examples
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


def labelled_data(n=40, seed=0):
    """Images (n, 3, 2) and int32 labels (n,); the labels are not sorted, so a batch that mixed
    up rows between the two leaves would not match the host indexing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, 2)).astype(np.float32)
    y = rng.permutation(n).astype(np.int32)
    return {"x": x, "y": y}


def test_labelled_batches_keep_each_example_with_its_label():
    data = labelled_data()
    for step, batch in itertools.islice(train_batches(data, 8, seed=5), 12):  # 2+ epochs
        idx = batch_indices(step, num_examples=40, batch_size=8, seed=5)
        assert batch.keys() == {"x", "y"} and batch["y"].dtype == np.int32
        np.testing.assert_array_equal(batch["x"], data["x"][idx])
        np.testing.assert_array_equal(batch["y"], data["y"][idx])
    # The same rows as the unlabelled split gives: adding labels changes no batch.
    _, plain = next(itertools.islice(train_batches(data["x"], 8, seed=5), 7, None))
    _, labelled = next(itertools.islice(train_batches(data, 8, seed=5), 7, None))
    np.testing.assert_array_equal(plain, labelled["x"])


def test_labelled_padded_batches_pad_images_and_labels_alike():
    data = labelled_data(10)
    out = list(padded_batches(data, 4))
    assert [n for _, n in out] == [4, 4, 2]
    for key in ("x", "y"):
        np.testing.assert_array_equal(np.concatenate([b[key][:n] for b, n in out]), data[key])
    np.testing.assert_array_equal(out[-1][0]["y"], data["y"][[8, 9, 9, 9]])
    np.testing.assert_array_equal(out[-1][0]["x"], data["x"][[8, 9, 9, 9]])


def test_labelled_batches_are_sharded_over_the_mesh():
    mesh = make_mesh(8)
    data = labelled_data(64)
    _, batch = next(train_batches(data, 16, seed=0, sharding=batch_sharding(mesh)))
    idx = batch_indices(0, num_examples=64, batch_size=16, seed=0)
    for key, shard_shape in (("x", (2, 3, 2)), ("y", (2,))):
        leaf = batch[key]
        assert isinstance(leaf, jax.Array) and len(leaf.addressable_shards) == 8
        assert all(s.data.shape == shard_shape for s in leaf.addressable_shards)
        np.testing.assert_array_equal(np.asarray(leaf), data[key][idx])
    assert batch["y"].dtype == np.int32


def test_a_split_is_an_array_or_a_dict_with_x():
    data = labelled_data(10)
    assert num_examples(data) == 10 and num_examples(data["x"]) == 10
    assert inputs(data) is data["x"] and inputs(data["x"]) is data["x"]
    dataset = Dataset(data, data, data)
    assert dataset.event_shape == (3, 2) == dataset._replace(train=data["x"]).event_shape
    with pytest.raises(ValueError, match=r"share its leading .*got shapes .*\(10, 3, 2\).*\(9,\)"):
        num_examples({"x": data["x"], "y": data["y"][:9]})
    with pytest.raises(ValueError, match=r"hold the examples under 'x'; got keys \['image', 'y'\]"):
        inputs({"image": data["x"], "y": data["y"]})
    with pytest.raises(ValueError, match="needs a leading example axis"):
        num_examples({"x": data["x"], "y": np.int32(3)})


def test_check_split_names_the_leaf_with_nan_and_skips_labels():
    data = labelled_data(10)
    check_split("data.train", data)  # int32 labels are not scanned, finite images pass
    data["x"][4, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"data.train\['x'\] contains 1 non-finite .*index 4"):
        check_split("data.train", data)
