"""The digits classifier: the feature extractor of FID, KID and Inception Score on 8x8 digits.

Inception-v3 features mean nothing on 8x8 images, so the scores on digits use a small
convolutional classifier (:class:`jgen.nets.classifier.ConvClassifier`) trained by the project on
the training split of the clean digits (``x / 16``, DATA.md), the 128-d penultimate layer as
features and its logits for the Inception Score — the "domain-specific classifier" protocol of
Binkowski et al. 2018 (KID) and of the MNIST scores in the GAN literature.

The shipped weights (``assets/digits_classifier.npz``) come from
``python experiments/train_digits_classifier.py``, which calls :func:`train` with the defaults
below; ``tests/metrics/test_digits_classifier.py`` checks their test accuracy.

Images given to :func:`features_and_logits` must be on the scale of the clean digits: ``[0, 1]``
with 0 the background. Samples of a model of the continuous variant ``(x + u) / 17`` map back
with :func:`from_dequantized`.
"""

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgen.checks import check_int, check_positive
from jgen.data import digits
from jgen.nets.classifier import ConvClassifier
from jgen.nets.weights import load_npz, save_npz
from jgen.types import Array, Params, PRNGKey

WEIGHTS_PATH = Path(__file__).parent / "assets" / "digits_classifier.npz"
NUM_CLASSES = 10
MODEL = ConvClassifier(NUM_CLASSES)


class TrainHistory(NamedTuple):
    """Per-step training loss ``(num_steps,)`` and the final accuracies."""

    loss: Array
    validation_accuracy: float
    test_accuracy: float


def _as_images(x: Array) -> Array:
    x = jnp.asarray(x)
    if x.shape[1:] == digits.IMAGE_SHAPE:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (*digits.IMAGE_SHAPE, 1):
        raise ValueError(f"images must have shape (n, 8, 8) or (n, 8, 8, 1); got shape {x.shape}")
    return x


def from_dequantized(x: Array) -> Array:
    """Maps continuous-variant values ``y = (x + u) / 17`` in ``[0, 1)`` to clean images
    ``floor(17 y) / 16``: the pixel level ``y`` dequantizes, on the clean scale. Values outside
    ``[0, 1)`` (model samples may overshoot) are clipped to the extreme levels."""
    levels = jnp.clip(jnp.floor(jnp.asarray(x) * digits.NUM_LEVELS), 0, digits.NUM_LEVELS - 1)
    return levels / (digits.NUM_LEVELS - 1)


def features_and_logits(params: Params, images: Array) -> tuple[Array, Array]:
    """``(features (n, 128), logits (n, 10))`` of images ``(n, 8, 8[, 1])`` in ``[0, 1]``."""
    return MODEL.apply({"params": params}, _as_images(images))


def accuracy(params: Params, images: Array, labels: Array) -> float:
    """Share of ``images`` whose argmax logit equals ``labels``."""
    _, logits = features_and_logits(params, images)
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(labels)))


def _shift(key: PRNGKey, x: Array) -> Array:
    """Translates each image by up to one pixel in each direction (zero fill): the augmentation
    that keeps a classifier of 1000 images from memorising pixel positions."""

    def one(key, image):
        dy, dx = jax.random.randint(key, (2,), 0, 3)
        padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)))
        return jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)

    return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)


def train(
    key: PRNGKey,
    *,
    num_steps: int = 4000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
) -> tuple[Params, TrainHistory]:
    """Trains the classifier on the clean training digits by cross-entropy.

    AdamW with a cosine decay, minibatches drawn with replacement, one-pixel random translations.

    Args:
      key: PRNG key (initialisation, batches, augmentation).
      num_steps: optimisation steps.
      batch_size: examples per step.
      learning_rate: peak learning rate.
      weight_decay: decoupled weight decay (Loshchilov & Hutter 2019).

    Returns:
      ``(params, history)`` with validation and test accuracy of the final parameters.
    """
    check_int("num_steps", num_steps)
    check_int("batch_size", batch_size)
    check_positive("learning_rate", learning_rate)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    x, y = digits.load("clean", "train")
    x, y = _as_images(x), jnp.asarray(y)
    init_key, train_key = jax.random.split(key)
    params = MODEL.init(init_key, x[:1])["params"]
    schedule = optax.cosine_decay_schedule(learning_rate, num_steps)
    opt = optax.adamw(schedule, weight_decay=weight_decay)

    def loss_fn(params, images, labels):
        _, logits = MODEL.apply({"params": params}, images)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def step(carry, step_key):
        params, opt_state = carry
        index_key, shift_key = jax.random.split(step_key)
        idx = jax.random.randint(index_key, (batch_size,), 0, x.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, _shift(shift_key, x[idx]), y[idx])
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    run = jax.jit(lambda p, s, k: jax.lax.scan(step, (p, s), jax.random.split(k, num_steps)))
    (params, _), losses = run(params, opt.init(params), train_key)
    history = TrainHistory(
        losses,
        accuracy(params, *digits.load("clean", "validation")),
        accuracy(params, *digits.load("clean", "test")),
    )
    return params, history


def save(params: Params, path=WEIGHTS_PATH) -> None:
    """Writes ``params`` as ``.npz`` (atomically; :func:`jgen.nets.weights.save_npz`)."""
    save_npz({"params": params}, path)


def load(path=WEIGHTS_PATH) -> Params:
    """Reads classifier parameters, checked against the architecture; default: the shipped ones."""
    template = jax.eval_shape(MODEL.init, jax.random.key(0), jnp.zeros((1, *digits.IMAGE_SHAPE, 1)))
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    return load_npz(path, template)["params"]
