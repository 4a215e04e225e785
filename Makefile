# Two entry points: `make serve` and `make test`. Both need only python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARTIFACTORY_WEBHOOK_SECRET ?= local-dev-secret
export ARTIFACTORY_WEBHOOK_SECRET

.PHONY: serve test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/hookwise serve --config hookwise.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) hookwise.db hookwise.db-wal hookwise.db-shm
