"""From ``config.data`` to a ``jgen.data.Dataset``: one loader per data source.

With ``data.labels = True`` every split is ``{"x": images, "y": int32 labels (n,)}`` (for
conditional models); otherwise it is the array of images alone.
"""

import jax
import numpy as np

from jgen.checks import check_choice, check_int
from jgen.data import digits, shapes, text, tfds_sources, toy2d
from jgen.data.batching import take
from jgen.data.dataset import Dataset, num_examples


def _check_labels_exist(data_config, has_labels: bool) -> None:
    """Raises ``ValueError`` when ``data.labels`` asks for labels that the dataset lacks."""
    if data_config.labels and not has_labels:
        raise ValueError(
            f"data.labels must be False for data.name={data_config.name!r}, which has no class "
            f"labels; got {data_config.labels!r}"
        )


def _with_labels(data_config, images: np.ndarray, labels: np.ndarray | None):
    """``images``, or ``{"x": images, "y": labels}`` when ``data.labels`` asks for labels
    (``labels`` is None for a dataset without them: an error then)."""
    _check_labels_exist(data_config, labels is not None)
    return {"x": images, "y": labels} if data_config.labels else images


def toy_dataset(data_config, seed: int) -> Dataset:
    """Independent samples of a 2-D toy per split; the reference is the test-set mean of
    ``-log p_data``, a Monte Carlo estimate of the true density's entropy (in nats)."""
    check_choice("data.name", data_config.name, toy2d.NAMES)
    _check_labels_exist(data_config, has_labels=False)
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
    """The fixed digits split (DATA.md), each split truncated to the configured size.

    With ``data.num_levels = 17`` the splits hold the cell corners ``k / 17`` and the model
    dequantizes them with fresh noise (``jgen.bijectors.dequantization``); otherwise they hold
    ``data.variant`` as ``jgen.data.digits.load`` returns it. ``data.labels`` adds the digit
    classes 0..9.
    """
    limits = {
        "train": data_config.num_train,
        "validation": data_config.num_validation,
        "test": data_config.num_test,
    }
    if data_config.num_levels and data_config.num_levels != digits.NUM_LEVELS:
        raise ValueError(
            f"data.num_levels must be 0 or 17 for digits; got {data_config.num_levels}"
        )

    def load(split):
        if data_config.num_levels:
            raw, labels = digits.load("raw", split)
            images = raw.astype(np.float32) / digits.NUM_LEVELS
        else:
            images, labels = digits.load(data_config.variant, split, seed=seed)
        return _with_labels(data_config, images, labels)

    return Dataset(**{split: take(load(split), slice(n)) for split, n in limits.items()})


def tfds_dataset(data_config, seed: int) -> Dataset:
    """A TFDS image dataset (``jgen.data.tfds_sources``) as float32 ``(n, H, W, C)``.

    Validation is the last ``data.num_validation`` of the first ``num_train + num_validation``
    TFDS ``train`` images; test is the first ``data.num_test`` of TFDS ``test``. With
    ``data.num_levels = K`` (256 for 8-bit images) the values are the cell corners ``x / K`` that
    the model dequantizes; otherwise ``x / max`` in [0, 1] (``binarized_mnist`` stays 0/1).
    ``data.labels`` adds the class labels (``binarized_mnist`` has none: an error).
    """
    del seed
    check_choice("data.name", data_config.name, tfds_sources.NAMES)
    num_train, num_validation = data_config.num_train, data_config.num_validation
    max_value = 1 if data_config.name == "binarized_mnist" else 255
    scale = data_config.num_levels or max_value

    def load(split, limit):
        images, labels = tfds_sources.load(data_config.name, split, limit=limit)
        return _with_labels(data_config, images.astype(np.float32) / scale, labels)

    train = load("train", num_train + num_validation)
    test = load("test", data_config.num_test)
    num_validation = min(num_validation, num_examples(train) // 2)
    return Dataset(
        take(train, slice(-num_validation)), take(train, slice(-num_validation, None)), test
    )


SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.1  # of the shapes images, for validation and again for test


def split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train / validation / test rows of the grid (``shapes.load()``).

    A permutation of ``range(n)``, ``n = 6144``, from ``np.random.default_rng(SPLIT_SEED)``: its
    last ``2 m`` entries, ``m = round(0.1 n) = 614``, are validation then test, the first
    ``n - 2 m = 4916`` train.

    Returns:
      Three disjoint int64 index arrays whose union is every row.
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(shapes.NUM_IMAGES)
    held_out = round(HELD_OUT_FRACTION * shapes.NUM_IMAGES)
    return np.split(order, [shapes.NUM_IMAGES - 2 * held_out, shapes.NUM_IMAGES - held_out])


def shapes_dataset(data_config, seed: int) -> Dataset:
    """The shapes grid as a ``Dataset`` of binary images ``(n, 32, 32)`` on the fixed split of
    :func:`split_indices`, each split truncated to ``data.num_train`` / ``num_validation`` /
    ``num_test`` (as the digits loader of ``experiments.datasets`` does).

    Args:
      data_config: ``config.data``; ``name`` must be ``"shapes"`` and ``labels`` False (the
        factors are not class labels of a conditional model).
      seed: unused (the split is fixed).

    Returns:
      The ``Dataset``.

    Raises:
      ValueError: naming ``data.name`` or ``data.labels``.
    """
    del seed
    check_choice("data.name", data_config.name, ("shapes",))
    if data_config.labels:
        raise ValueError(
            f"data.labels must be False for data.name='shapes', which has no class labels; got "
            f"{data_config.labels!r}"
        )
    images, _ = shapes.load()
    limits = (data_config.num_train, data_config.num_validation, data_config.num_test)
    splits = [take(images[rows], slice(n)) for rows, n in zip(split_indices(), limits, strict=True)]
    return Dataset(*splits)


def text_dataset(data_config, seed: int) -> Dataset:
    """The shipped character corpus (``jgen.data.text``) as int32 token chunks
    ``(n, data.seq_len)``, each split truncated to the configured number of chunks;
    ``data.num_levels`` must be the vocabulary size. Samples are decoded back to text."""
    del seed
    _check_labels_exist(data_config, has_labels=False)
    check_int("data.seq_len", data_config.seq_len)
    vocab = text.vocabulary(text.load_text())
    if data_config.num_levels != len(vocab):
        raise ValueError(
            f"data.num_levels must be the vocabulary size {len(vocab)} for data.source='text'; "
            f"got {data_config.num_levels}"
        )
    limits = {
        "train": data_config.num_train,
        "validation": data_config.num_validation,
        "test": data_config.num_test,
    }
    splits = {s: text.load(s, data_config.seq_len)[0][:n] for s, n in limits.items()}
    return Dataset(**splits, decode=lambda tokens: [text.decode(t, vocab) for t in tokens])


DATASETS = {
    "toy2d": toy_dataset,
    "digits": digits_dataset,
    "tfds": tfds_dataset,
    "text": text_dataset,
    "shapes": shapes_dataset,
}


def load(data_config, seed: int) -> Dataset:
    """The dataset named by ``data_config.source``."""
    check_choice("data.source", data_config.source, DATASETS)
    return DATASETS[data_config.source](data_config, seed)
