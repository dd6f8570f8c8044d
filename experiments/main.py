"""Train one experiment: ``python experiments/main.py --config=experiments/configs/NAME.py[:smoke]
--workdir=DIR``. Any config field can be overridden, e.g. ``--config.train.num_steps=100``; an
unknown field is an error. Re-running with the same workdir resumes from its last checkpoint."""

import os
import sys

# Run as a script, Python puts experiments/ on the path; the package lives one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments.run import run, summary  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    final = run(_CONFIG.value, _WORKDIR.value)
    print(summary(final, _WORKDIR.value))


if __name__ == "__main__":
    app.run(main)
