"""Real image datasets (MNIST, Fashion-MNIST, binarized MNIST, CIFAR-10) from TensorFlow Datasets.

Reads go through `tfds.data_source`, a random-access view of data prepared in the
`array_record` format, so no TensorFlow is needed at read time. Nothing is ever downloaded
here: the data is prepared once on a machine with internet (which does need TensorFlow), and
a missing dataset raises a `FileNotFoundError` that says where it was looked for and how to
prepare it.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from jgen.checks import check_choice

NAMES = ("mnist", "fashion_mnist", "binarized_mnist", "cifar10")

# Records per `__getitems__` call: batched reads are ~3x faster than one call per record,
# and chunking bounds the list of decoded python dicts held at once.
_CHUNK = 10_000


def _resolve_data_dir(data_dir):
    # Resolved per call (tfds freezes its own default at import time), so that the error
    # message can name the directory and a `TFDS_DATA_DIR` set later is still honoured.
    if data_dir is not None:
        return os.fspath(data_dir)
    default = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    return os.environ.get("TFDS_DATA_DIR") or default


def _not_prepared_message(name, split, data_dir):
    prepare = (
        "import tensorflow_datasets as tfds; "
        f"tfds.builder({name!r}, data_dir={data_dir!r}, file_format='array_record')"
        ".download_and_prepare()"
    )
    return (
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in array_record format "
        f"under data_dir {data_dir!r} (looked in {os.path.join(data_dir, name)}).\n"
        "Prepare it once on a machine with internet access. Unlike reading, preparing needs "
        "TensorFlow, and tensorflow-datasets 4.9.x also needs importlib_resources for it:\n"
        "  pip install tensorflow tensorflow-datasets array_record importlib_resources\n"
        f'  python -c "{prepare}"\n'
        f"or: tfds build {name} --data_dir={data_dir} --file_format=array_record\n"
        "If it was prepared on another machine, copy that data_dir here. Then set the "
        "environment variable TFDS_DATA_DIR to it, or pass data_dir=..."
    )


def source(name, split, *, data_dir=None):
    """Opens a random-access view of one split of a prepared TFDS dataset.

    Args:
        name: One of `NAMES`.
        split: A TFDS split, e.g. `"train"`, `"test"` or `"train[:1000]"`.
        data_dir: Root TFDS data directory. Defaults to the `TFDS_DATA_DIR` environment
            variable, else `~/tensorflow_datasets`.

    Returns:
        The tfds data source: supports `len`, `source[i]` and `source.__getitems__(keys)`,
        each record a dict of numpy values (e.g. `{"image": uint8 (H, W, C), "label": int}`).

    Raises:
        ValueError: If `name` is not one of `NAMES`.
        FileNotFoundError: If the dataset is not prepared in array_record format under the
            data directory; the message says how to prepare it.
    """
    check_choice("name", name, NAMES)
    data_dir = _resolve_data_dir(data_dir)
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    # tfds 4.9.10 signals missing data as NotImplementedError ("file format TFRECORD is not
    # supported": the format it assumes when no dataset_info.json is found, and also what a
    # TFRecord-only preparation gives). A KeyError on the empty split dict is what it raises
    # when it picks the directory itself; kept in case a data_dir ever resolves that way.
    except (NotImplementedError, KeyError) as err:
        raise FileNotFoundError(_not_prepared_message(name, split, data_dir)) from err


def load(name, split, *, data_dir=None, limit=None):
    """Reads one split of a prepared TFDS dataset into numpy arrays.

    Args:
        name: One of `NAMES`.
        split: A TFDS split, e.g. `"train"` or `"test"`.
        data_dir: Root TFDS data directory; see `source`.
        limit: If given, read only the first `limit` records.

    Returns:
        `(images, labels)`: images uint8 of shape `(n, H, W, C)` as stored ((28, 28, 1) for
        the MNIST variants, (32, 32, 3) for cifar10, binarized_mnist holding 0/1); labels
        int32 of shape `(n,)`, or None for binarized_mnist, which has no labels.

    Raises:
        ValueError: If `name` is unknown or `limit` is negative.
        FileNotFoundError: If the dataset is not prepared; see `source`.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    src = source(name, split, data_dir=data_dir)
    n = len(src) if limit is None else min(limit, len(src))
    features = src.dataset_info.features
    images = np.empty((n, *features["image"].shape), np.uint8)
    labels = np.empty((n,), np.int32) if "label" in features else None
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        records = src.__getitems__(list(range(start, stop)))
        images[start:stop] = np.stack([r["image"] for r in records])
        if labels is not None:
            labels[start:stop] = [r["label"] for r in records]
    return images, labels
