"""The digits split and variants are exactly as DATA.md specifies."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jgen.data import digits

SIZES = {"train": 1000, "validation": 350, "test": 447}


@pytest.mark.parametrize("split", SIZES)
def test_split_sizes_order_and_values(split):
    reference = load_digits()
    offset = {"train": 0, "validation": 1000, "test": 1350}[split]
    raw, labels = digits.load("raw", split)
    assert raw.shape == (SIZES[split], 8, 8) and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, reference.images[offset : offset + SIZES[split]])
    np.testing.assert_array_equal(labels, reference.target[offset : offset + SIZES[split]])
    assert raw.min() == 0 and raw.max() == 16

    binary, _ = digits.load("binary", split)
    np.testing.assert_array_equal(binary, (raw >= 8).astype(np.float32))

    clean, _ = digits.load("clean", split)
    np.testing.assert_allclose(clean, raw / 16.0, rtol=1e-6)

    cont, _ = digits.load("continuous", split)
    assert cont.dtype == np.float32 and 0.0 <= cont.min() and cont.max() < 1.0
    # Dequantization keeps every pixel in its own cell [k/17, (k+1)/17).
    np.testing.assert_array_equal(np.floor(cont.astype(np.float64) * 17), raw)


def test_splits_partition_the_dataset():
    total = sum(len(digits.load("raw", s)[0]) for s in SIZES)
    assert total == 1797


def test_continuous_noise_is_fixed_by_the_seed_and_uniform():
    a, _ = digits.load("continuous", "train", seed=0)
    b, _ = digits.load("continuous", "train", seed=0)
    c, _ = digits.load("continuous", "train", seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    raw, _ = digits.load("raw", "train")
    u = a.astype(np.float64) * 17 - raw  # should be U[0, 1): mean 1/2, var 1/12
    se = np.sqrt(1 / 12 / u.size)
    assert abs(u.mean() - 0.5) < 4 * se


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="variant must be one of .*; got 'binarized'"):
        digits.load("binarized", "train")
    with pytest.raises(ValueError, match="split must be one of .*; got 'valid'"):
        digits.load("binary", "valid")
