"""Trains the digits classifier whose features FID / KID / IS use on digits, and writes its
weights to ``jgen/metrics/assets/digits_classifier.npz``.

    python experiments/train_digits_classifier.py [--seed=0] [--out=PATH]
"""

import argparse
import time

import jax

from jgen.metrics import digits_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(digits_classifier.WEIGHTS_PATH))
    args = parser.parse_args()
    start = time.perf_counter()
    params, history = digits_classifier.train(jax.random.key(args.seed))
    digits_classifier.save(params, args.out)
    print(
        f"trained in {time.perf_counter() - start:.1f} s; "
        f"final loss {float(history.loss[-1]):.4f}; "
        f"validation accuracy {history.validation_accuracy:.4f}; "
        f"test accuracy {history.test_accuracy:.4f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
