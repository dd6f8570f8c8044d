"""RBMs on the binary digits: exact test NLL of the 64 x 16 RBMs (CD-1, PCD) and the AIS
estimate of the 64 x 100 RBM's, with its standard error and the reverse-AIS bound.

    python experiments/rbm_digits_results.py [--workdir=runs/rbm_digits] [--num_betas=10000]
                                             [--out=docs/rbm_digits.md] [--smoke]

Each option of ``experiments/configs/rbm_digits.py`` is trained through the experiment layer
(``cd1`` and ``pcd`` keep their best validation state, ``h100`` its last). The AIS run follows
Salakhutdinov & Murray 2008: a base RBM with zero weights and the training data's log-odds as
visible biases, ``--num_betas`` linear inverse temperatures, 100 chains, one block-Gibbs sweep per
temperature (``jgen.models.rbm.ais_log_likelihood``); its reverse run starts from 1000-step Gibbs
chains. ``log Z`` from AIS is a stochastic lower bound and the reverse estimate an upper bound,
so agreement of the two brackets the truth.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments import datasets  # noqa: E402
from experiments.compare import train_and_restore  # noqa: E402
from experiments.configs import rbm_digits  # noqa: E402
from jgen.metrics.rbm_ais import base_visible_bias  # noqa: E402
from jgen.models import rbm  # noqa: E402


def exact_row(option: str, workdir: str, smoke: bool) -> str:
    config = rbm_digits.get_config(option + (",smoke" if smoke else ""))
    _, _, seconds, final = train_and_restore(config, workdir)
    hidden = config.model.num_hidden
    return (
        f"| 64 x {hidden}, {option} | {final['test/nll']:.2f} | exact (enumerating {hidden} "
        f"hidden units) | {seconds:.0f} |"
    )


def ais_row(workdir: str, num_betas: int, smoke: bool) -> str:
    config = rbm_digits.get_config("h100" + (",smoke" if smoke else ""))
    _, state, seconds, _ = train_and_restore(config, workdir)
    data = datasets.load(config.data, config.seed)
    flat = lambda x: np.asarray(x).reshape(len(x), -1)  # noqa: E731
    train, test = flat(data.train), flat(data.test)
    estimate = jax.jit(
        lambda params, v, key: rbm.ais_log_likelihood(
            params,
            v,
            key,
            num_betas=num_betas,
            num_chains=100,
            base_bias=base_visible_bias(train),
            gibbs_steps=1_000,
        )
    )(state.params, test, jax.random.key(1))
    r = {name: float(value) for name, value in estimate._asdict().items()}
    return (
        f"| 64 x {config.model.num_hidden}, h100 | {-r['log_likelihood']:.2f} ± "
        f"{r['standard_error']:.2f} | AIS, {num_betas} betas: log Z = {r['log_partition']:.3f} ± "
        f"{r['log_partition_stderr']:.3f}, reverse AIS {r['log_partition_upper']:.3f} | "
        f"{seconds:.0f} |"
    )


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/rbm_digits")
    parser.add_argument("--out", default="docs/rbm_digits.md")
    parser.add_argument("--num_betas", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.num_betas < 2:
        raise ValueError(f"--num_betas must be >= 2; got {args.num_betas}")
    rows = [exact_row(o, os.path.join(args.workdir, o), args.smoke) for o in ("cd1", "pcd")]
    rows.append(ais_row(os.path.join(args.workdir, "h100"), args.num_betas, args.smoke))
    text = "\n".join(
        [
            "# RBMs on the binary digits",
            "",
            f"`python experiments/rbm_digits_results.py --num_betas={args.num_betas}`"
            + (" (SMOKE)" if args.smoke else "")
            + " (`experiments/configs/rbm_digits.py`; 447 test digits; independent Bernoulli "
            "pixels: 24.91 nats).",
            "",
            "| RBM | test NLL (nats per image) | estimator | train s |",
            "| --- | ---: | --- | ---: |",
            *rows,
        ]
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    return text


if __name__ == "__main__":
    print(main())
