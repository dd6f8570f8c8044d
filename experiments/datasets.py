"""From ``config.data`` to a ``jgen.data.Dataset``: one loader per data source."""

import jax
import numpy as np

from jgen.checks import check_choice
from jgen.data import digits, toy2d
from jgen.data.dataset import Dataset


def toy_dataset(data_config, seed: int) -> Dataset:
    """Independent samples of a 2-D toy per split; the reference is the test-set mean of
    ``-log p_data``, a Monte Carlo estimate of the true density's entropy (in nats)."""
    check_choice("data.name", data_config.name, toy2d.NAMES)
    key = jax.random.fold_in(jax.random.key(seed), 1_000)
    sizes = (data_config.num_train, data_config.num_validation, data_config.num_test)
    train, validation, test = (
        toy2d.sample(data_config.name, jax.random.fold_in(key, i), n) for i, n in enumerate(sizes)
    )
    nll = -np.asarray(toy2d.log_prob(data_config.name, test))
    reference = {
        "test/true_entropy": float(nll.mean()),
        "test/true_entropy_stderr": float(nll.std() / np.sqrt(len(nll))),
    }
    return Dataset(train, validation, test, reference)


def digits_dataset(data_config, seed: int) -> Dataset:
    """The fixed digits split (DATA.md), each split truncated to the configured size."""
    limits = {
        "train": data_config.num_train,
        "validation": data_config.num_validation,
        "test": data_config.num_test,
    }
    splits = {s: digits.load(data_config.variant, s, seed=seed)[0][:n] for s, n in limits.items()}
    return Dataset(**splits)


DATASETS = {"toy2d": toy_dataset, "digits": digits_dataset}


def load(data_config, seed: int) -> Dataset:
    """The dataset named by ``data_config.source``."""
    check_choice("data.source", data_config.source, DATASETS)
    return DATASETS[data_config.source](data_config, seed)
