"""Writes small TFDS datasets in the real prepared layout, so tests run the real loading code
without a download.

``tfds.testing.mock_data`` is not used for this: in tensorflow-datasets 4.9.10 its mocked data
source breaks batched reads (``__getitems__`` is set on a MagicMock as a plain attribute, so it is
called without ``self``), which ``jgen.data.tfds_sources.load`` relies on. Instead each dataset is
written for real: the registered builder's own feature spec and DatasetInfo, examples serialized
by tfds, PNG-encoded images (with PIL, since tfds's own encoder needs TensorFlow) in an
array_record shard per split.
"""

import io

import numpy as np
import tensorflow_datasets as tfds
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image
from tensorflow_datasets.core import naming

SPLIT_SIZES = {"train": 13, "test": 6}
SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "binarized_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
}


def _png(image):
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def write_fake_dataset(name, data_dir, split_sizes, seed=0):
    """Writes a prepared-looking array_record copy of TFDS dataset `name` under `data_dir`.

    Returns:
        `{split: (images, labels or None)}`: what was written, for exact comparisons.
    """
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    features = builder.info.features
    shape = features["image"].shape
    high = 2 if name == "binarized_mnist" else 256
    rng = np.random.default_rng(seed)
    builder.data_path.mkdir(parents=True, exist_ok=True)
    written, split_infos = {}, []
    for split, n in split_sizes.items():
        images = rng.integers(0, high, (n, *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, n) if "label" in features else None
        template = naming.ShardedFileTemplate(
            data_dir=builder.data_path,
            dataset_name=name,
            split=split,
            filetype_suffix="array_record",
        )
        writer = ArrayRecordWriter(
            str(template.sharded_filepath(shard_index=0, num_shards=1)), "group_size:1"
        )
        for i in range(n):
            example = {"image": _png(images[i])}
            if labels is not None:
                example["label"] = int(labels[i])
            if "id" in features:  # cifar10 carries a string id per image
                example["id"] = f"{split}_{i:05d}"
            writer.write(features.serialize_example(example))
        writer.close()
        split_infos.append(
            tfds.core.SplitInfo(
                name=split, shard_lengths=[n], num_bytes=0, filename_template=template
            )
        )
        written[split] = (images, labels)
    builder.info.set_splits(tfds.core.SplitDict(split_infos))
    builder.info.write_to_directory(builder.data_path)
    return written
