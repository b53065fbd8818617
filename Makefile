# The two commands a new user needs: `make dev` (run the pipeline locally) and
# `make test` (lint, type check, tests). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test soak lint typecheck venv policies profiles-setup screenshot deploy teardown package ops bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

# The soak at full size (5000 hits, a few minutes); `make test` runs it at 1000.
# SOAK_SEED=<n> replays a run; SOAK_FAULTS=off runs it without faults.
soak: $(STAMP)
	SOAK_HITS=$(or $(SOAK_HITS),5000) $(BIN)/python -m pytest -q -s -p no:logging tests/soak/test_soak.py

dev: $(STAMP)
	$(BIN)/python -m devtools.localstack $(ARGS)

policies: $(STAMP)
	$(BIN)/python -m devtools.deploy.policies

profiles-setup: $(STAMP)
	$(BIN)/python -m devtools.deploy.profiles_setup --stage $(or $(STAGE),dev)

screenshot: $(STAMP)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/devtools/localstack/test_demo_e2e.py

deploy: $(STAMP)
	$(if $(STAGE),,$(error STAGE is required: make deploy STAGE=prod))
	$(BIN)/python -m devtools.deploy.stage deploy --stage $(STAGE)

teardown: $(STAMP)
	$(if $(STAGE),,$(error STAGE is required: make teardown STAGE=prod))
	$(BIN)/python -m devtools.deploy.stage teardown --stage $(STAGE) --yes

package: $(STAMP)
	$(if $(STAGE),,$(error STAGE is required: make package STAGE=prod))
	$(BIN)/python -m devtools.deploy.package --stage $(STAGE)

ops: $(STAMP)
	$(BIN)/python -m devtools.ops $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
