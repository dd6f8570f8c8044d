"""``data.labels``: labelled splits for conditional models; clear errors where there are none."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from experiments import datasets
from experiments.configs import default
from jgen.data import digits
from tests.data.fake_tfds import write_fake_dataset


def data_config(**fields):
    config = default.get_config()
    config.data.update(fields)
    return config.data


@pytest.mark.parametrize("num_levels", [0, 17])
def test_digits_with_labels_pair_each_image_with_its_digit(num_levels):
    sizes = dict(num_train=300, num_validation=350, num_test=1000)  # test has only 447
    config = data_config(source="digits", num_levels=num_levels, labels=True, **sizes)
    data = datasets.load(config, seed=3)
    plain = datasets.load(data_config(source="digits", num_levels=num_levels, **sizes), seed=3)
    truth = load_digits()  # labels and pixels straight from scikit-learn
    lengths = {"train": 300, "validation": 350, "test": 447}
    for split, n in lengths.items():
        labelled, unlabelled = getattr(data, split), getattr(plain, split)
        rows = np.arange(1797)[digits.SPLITS[split]][:n]
        assert labelled.keys() == {"x", "y"} and labelled["y"].dtype == np.int32
        np.testing.assert_array_equal(labelled["y"], truth.target[rows])
        np.testing.assert_array_equal(labelled["y"], digits.load("raw", split)[1][:n])
        np.testing.assert_array_equal(labelled["x"], unlabelled)
        if num_levels:
            np.testing.assert_allclose(labelled["x"], truth.images[rows] / 17, rtol=1e-6)
    assert data.event_shape == plain.event_shape == (8, 8)


def test_labels_default_to_false_and_splits_stay_arrays():
    assert default.get_config().data.labels is False
    data = datasets.load(data_config(source="digits", num_train=50), seed=0)
    assert all(isinstance(s, np.ndarray) for s in (data.train, data.validation, data.test))


def test_toy2d_has_no_labels():
    with pytest.raises(ValueError, match=r"data.labels must be False for data.name='moons'.*True"):
        datasets.load(data_config(source="toy2d", labels=True), seed=0)


def test_tfds_labels_and_binarized_mnist_without_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    sizes = {"train": 12, "test": 5}
    written = write_fake_dataset("mnist", tmp_path, sizes)
    write_fake_dataset("binarized_mnist", tmp_path, sizes)
    config = data_config(source="tfds", name="mnist", labels=True, num_train=8, num_validation=4)
    data = datasets.load(config, seed=0)
    train_images, train_labels = written["train"]
    expected = {
        "train": (train_images[:8], train_labels[:8]),
        "validation": (train_images[8:12], train_labels[8:12]),
        "test": written["test"],
    }
    for split, (images, labels) in expected.items():
        got = getattr(data, split)
        assert got["y"].dtype == np.int32
        np.testing.assert_array_equal(got["y"], labels)
        np.testing.assert_array_equal(got["x"], images.astype(np.float32) / 255)
    config.name = "binarized_mnist"
    with pytest.raises(
        ValueError, match="data.labels must be False for data.name='binarized_mnist'"
    ):
        datasets.load(config, seed=0)
