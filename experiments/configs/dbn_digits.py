"""A deep belief net on the binary 8x8 digits: ``--config=experiments/configs/dbn_digits.py
[:OPTION][,smoke]`` with OPTION ``small`` (default) or ``wide``.

``small``: 64-100-16, two RBMs trained greedily by PCD-1 (Hinton, Osindero & Teh 2006), 10000
updates each, the second on the first's hidden probabilities. Its top RBM (100 x 16) is
enumerable, so ``test/nll_bound`` is the DBN's importance-sampled NLL (1000 recognition samples;
an upper bound in expectation); ``test/bottom_rbm_nll`` is the exact NLL of the first RBM alone.
``wide``: 64-100-100 (no enumerable layer: reconstruction error and samples only). The RBM
training fields are those of ``rbm_digits.py``'s ``pcd`` option.

Measured (``small``, 2 CPU cores, 170 s; ``train_and_evaluate(config, workdir,
trainer=dbn.make(config, (8, 8)), data=experiments.datasets.load(config.data, 0))``): test
``nll_bound`` 17.47 nats per image (validation 19.04), reconstruction error 3.74; the validation
bound falls from 40.5 (only the bottom RBM trained, the top one untrained) to 21.1 within 500
steps of the second layer. Compare ``rbm_digits.py``: 18.7 (64 x 16, exact) and 17.4 (64 x 100,
AIS).
"""

from experiments.configs import default
from experiments.configs.rbm_digits import model_config, parse_option, rbm_training

OPTIONS = {"small": (100, 16), "wide": (100, 100)}


def get_config(arg: str | None = None):
    option, parts = parse_option("dbn_digits", arg, OPTIONS, "small")
    sizes = OPTIONS[option]
    c = default.get_config()
    with c.unlocked():
        fields = model_config(persistent=True, momentum=0.5).to_dict()
        del fields["num_hidden"]
        fields.update(
            name="dbn",
            hidden_sizes=sizes,
            steps_per_layer=10_000,
            propagate="probabilities",
            eval_samples=1_000,
        )
        c.model = type(c.model)(fields)
    c.model.lock()
    rbm_training(c)
    c.train.num_steps = 20_000
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.optim.warmup_steps = 0
        c.model.steps_per_layer, c.model.eval_samples = 10, 8
        c.model.num_chains, c.model.sample_steps, c.model.momentum_switch_step = 16, 10, 5
    return c
