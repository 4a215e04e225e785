# Two entry points: `make serve` and `make test`. Both need only python3 (>= 3.11).
# `make test-fast` is the edit-test loop: the unit tier, in-process, in parallel.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARTIFACTORY_WEBHOOK_SECRET ?= local-dev-secret
export ARTIFACTORY_WEBHOOK_SECRET

.PHONY: serve test test-fast bench lint clean

PLUGINS := $(wildcard plugins/*/pyproject.toml)

# hookwise itself, then the integration plugins, each its own distribution registered
# through the `hookwise` entry point exactly as a third-party plugin would be.
$(STAMP): pyproject.toml $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/hookwise serve --config hookwise.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hookwise test
	$(VENV)/bin/python -m pytest

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" -n auto -q tests/unit examples

# The benchmark suite (docs/performance.md): `make bench BENCH_ARGS=--quick` for a smoke run.
bench: $(STAMP)
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) hookwise.db hookwise.db-wal hookwise.db-shm
