"""Tests for `jgen.data.tfds_sources` on small array_record datasets written to a tmp dir
(`tests.data.fake_tfds`): the whole read path (dataset_info.json, array_record, proto parsing,
PNG decoding) is real."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jgen.data import tfds_sources
from tests.data.fake_tfds import SHAPES, SPLIT_SIZES, write_fake_dataset


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """One data_dir holding all four datasets: `(data_dir, {name: {split: arrays}})`."""
    data_dir = tmp_path_factory.mktemp("tfds")
    written = {name: write_fake_dataset(name, data_dir, SPLIT_SIZES) for name in tfds_sources.NAMES}
    return str(data_dir), written


@pytest.mark.parametrize("name", tfds_sources.NAMES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_reads_what_was_written(fake_data, name, split):
    data_dir, written = fake_data
    images, labels = tfds_sources.load(name, split, data_dir=data_dir)
    n = SPLIT_SIZES[split]
    assert images.shape == (n, *SHAPES[name])
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, written[name][split][0])
    if name == "binarized_mnist":
        assert labels is None
        assert set(np.unique(images)) <= {0, 1}
    else:
        assert labels.shape == (n,)
        assert labels.dtype == np.int32
        assert labels.min() >= 0 and labels.max() < 10
        np.testing.assert_array_equal(labels, written[name][split][1])


@pytest.mark.parametrize("name", tfds_sources.NAMES)
def test_limit_reads_first_records(fake_data, name):
    data_dir, written = fake_data
    want_images, want_labels = written[name]["train"]
    images, labels = tfds_sources.load(name, "train", data_dir=data_dir, limit=4)
    np.testing.assert_array_equal(images, want_images[:4])
    if want_labels is not None:
        np.testing.assert_array_equal(labels, want_labels[:4])
    # A limit past the end reads everything; zero reads nothing but keeps the shapes.
    images, _ = tfds_sources.load(name, "train", data_dir=data_dir, limit=1000)
    assert len(images) == SPLIT_SIZES["train"]
    images, labels = tfds_sources.load(name, "train", data_dir=data_dir, limit=0)
    assert images.shape == (0, *SHAPES[name])
    assert labels is None or labels.shape == (0,)


def test_load_reads_across_chunks(fake_data, monkeypatch):
    data_dir, written = fake_data
    monkeypatch.setattr(tfds_sources, "_CHUNK", 5)  # 13 records: chunks of 5, 5, 3
    images, labels = tfds_sources.load("cifar10", "train", data_dir=data_dir)
    np.testing.assert_array_equal(images, written["cifar10"]["train"][0])
    np.testing.assert_array_equal(labels, written["cifar10"]["train"][1])


def test_negative_limit_raises(fake_data):
    with pytest.raises(ValueError, match="limit"):
        tfds_sources.load("mnist", "train", data_dir=fake_data[0], limit=-1)


def test_source_is_random_access(fake_data):
    data_dir, written = fake_data
    src = tfds_sources.source("mnist", "test", data_dir=data_dir)
    assert len(src) == SPLIT_SIZES["test"]
    np.testing.assert_array_equal(src[2]["image"], written["mnist"]["test"][0][2])


@pytest.mark.parametrize("name", tfds_sources.NAMES)
def test_missing_data_raises_file_not_found(tmp_path, name):
    with pytest.raises(FileNotFoundError) as info:
        tfds_sources.load(name, "train", data_dir=tmp_path)
    message = str(info.value)
    assert repr(name) in message
    assert str(tmp_path) in message
    assert "TFDS_DATA_DIR" in message
    assert "file_format='array_record'" in message
    assert info.value.__cause__ is not None


def test_unknown_name_raises_value_error():
    with pytest.raises(ValueError, match="name") as info:
        tfds_sources.source("mnistt", "train")
    assert "'mnistt'" in str(info.value)
    assert "fashion_mnist" in str(info.value)


def test_tfds_data_dir_env_var_is_honoured(fake_data, monkeypatch, tmp_path):
    data_dir, written = fake_data
    monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
    images, labels = tfds_sources.load("fashion_mnist", "test")
    np.testing.assert_array_equal(images, written["fashion_mnist"]["test"][0])
    np.testing.assert_array_equal(labels, written["fashion_mnist"]["test"][1])

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        tfds_sources.load("fashion_mnist", "test")
    # An explicit data_dir wins over the environment variable.
    images, _ = tfds_sources.load("fashion_mnist", "test", data_dir=data_dir)
    assert len(images) == SPLIT_SIZES["test"]


@pytest.mark.parametrize("name", tfds_sources.NAMES)
def test_source_under_tfds_mock_data(tmp_path, name):
    """``tfds.testing.mock_data`` fakes records from each builder's own feature spec. Its mock
    breaks the batched ``__getitems__`` that ``load`` uses (tfds 4.9.10), so here it checks
    ``source`` with single-record reads; ``load`` is tested on real array_record files above."""
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        src = tfds_sources.source(name, "train", data_dir=tmp_path)
        record = src[2]
    assert len(src) == 3
    assert record["image"].dtype == np.uint8
    assert record["image"].shape == ((32, 32, 3) if name == "cifar10" else (28, 28, 1))
    assert ("label" in record) == (name != "binarized_mnist")
