# Every target creates .venv from requirements.lock when it is missing or stale.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench compare clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) experiments/main.py --config=experiments/configs/flow_moons.py --workdir=runs/demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=20 -q

lint: $(STAMP)
	$(PY) -m ruff check jgen experiments tests notebooks benchmarks
	$(PY) -m ruff format --check jgen experiments tests notebooks benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

bench: $(STAMP)
	$(PY) benchmarks/samplers.py
	$(PY) benchmarks/flows.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/autoregressive.py

compare: $(STAMP)
	$(PY) experiments/compare.py --workdir=runs/compare --out=RESULTS.md
