# The two commands a new user needs: `make dev` (run the pipeline locally) and
# `make test` (lint, type check, tests). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two sets, so the first `make dev` does not wait for the test toolchain: LOCAL_STAMP is the
# local stack's packages (requirements-local.txt: make dev, bench, ops, deploy), STAMP is
# everything (requirements-dev.txt: make test and the rest). Each is installed from its lock
# (requirements-local.lock, requirements-dev.lock: every package, transitive ones too, with
# the hashes of its files, required), checked first against the plain files (make lock
# writes the locks again after a pin changed; devtools/locks.py).
LOCAL_STAMP := $(VENV)/.installed-local
STAMP := $(VENV)/.installed
# uv installs the same pinned versions several times faster than pip. It is put into .venv
# with pip; if that fails, or with `UV_VERSION=` (empty), pip does every install.
UV_VERSION ?= 0.13.8
# uv reads no pip configuration: an index given to pip in the environment is given to uv too,
# resolved as pip would (best version across indexes). Without one, uv uses PyPI.
ifneq ($(PIP_INDEX_URL),)
export UV_INDEX_URL ?= $(PIP_INDEX_URL)
endif
ifneq ($(PIP_EXTRA_INDEX_URL),)
export UV_EXTRA_INDEX_URL ?= $(PIP_EXTRA_INDEX_URL)
export UV_INDEX_STRATEGY ?= unsafe-best-match
endif
# `$(call install,LOCK)`: with uv when .venv has it, else (or if uv fails) with pip; either
# way every file's hash must be in the lock.
install = @echo "installing $(1)"; \
	$(BIN)/python -m devtools.locks --check || exit 1; \
	if [ -x $(BIN)/uv ] && $(BIN)/uv pip install --quiet --require-hashes --python $(BIN)/python -r $(1); then :; \
	else [ ! -x $(BIN)/uv ] || echo "uv failed: pip installs $(1)"; \
	[ -x $(BIN)/pip ] || $(BIN)/python -m ensurepip --default-pip >/dev/null; \
	$(BIN)/pip install --quiet --require-hashes -r $(1); fi

.PHONY: gtm-globals dev test soak lint typecheck venv venv-local lock policies profiles-setup screenshot deploy teardown package verify rollback ops bench clean
# A failed step leaves no file behind that would make the next run skip it.
.DELETE_ON_ERROR:

# .venv without pip (ensurepip alone takes 5-15 s; chalice brings pip in with the packages),
# then uv into it with the system's pip, else with .venv's own pip, else none.
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv --without-pip $(VENV)
ifneq ($(UV_VERSION),)
	@echo "installing uv $(UV_VERSION) into $(VENV)"
	@$(PYTHON) -m pip --python $(BIN)/python install --quiet uv==$(UV_VERSION) 2>/dev/null \
	|| { $(BIN)/python -m ensurepip --default-pip >/dev/null \
		&& $(BIN)/pip install --quiet uv==$(UV_VERSION) 2>/dev/null; } \
	|| echo "uv unavailable: pip installs"
endif

$(LOCAL_STAMP): $(VENV)/pyvenv.cfg requirements.txt requirements-local.txt requirements.lock requirements-local.lock
	$(call install,requirements-local.lock)
	touch $@

$(STAMP): $(LOCAL_STAMP) requirements-dev.txt requirements-dev.lock
	$(call install,requirements-dev.lock)
	touch $@

# After changing a pin in a requirements*.txt: the three locks again (uv, in .venv).
lock: $(VENV)/pyvenv.cfg
	$(BIN)/python -m devtools.locks

venv-local: $(LOCAL_STAMP)

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

dev: $(LOCAL_STAMP)
	$(BIN)/python -m devtools.localstack $(ARGS)

policies: $(LOCAL_STAMP)
	$(BIN)/python -m devtools.deploy.policies$(if $(ARGS), $(ARGS))

profiles-setup: $(LOCAL_STAMP)
	$(BIN)/python -m devtools.deploy.profiles_setup --stage $(or $(STAGE),dev)$(if $(ARGS), $(ARGS))

screenshot: $(STAMP)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/devtools/localstack/test_demo_e2e.py

deploy: $(LOCAL_STAMP)
	$(if $(STAGE),,$(error STAGE is required: make deploy STAGE=prod))
	$(BIN)/python -m devtools.deploy.stage deploy --stage $(STAGE)$(if $(ARGS), $(ARGS))

# Lists what it deletes and asks first (on this terminal); YES=1 deletes without asking;
# ARGS="--force", "--keep-queues", "--delete-logs" as devtools/deploy/stage.py describes.
teardown: $(LOCAL_STAMP)
	$(if $(STAGE),,$(error STAGE is required: make teardown STAGE=prod))
	$(BIN)/python -m devtools.deploy.stage teardown --stage $(STAGE)$(if $(YES), --yes)$(if $(ARGS), $(ARGS))

package: $(STAMP)
	$(if $(STAGE),,$(error STAGE is required: make package STAGE=prod))
	$(BIN)/python -m devtools.deploy.package --stage $(STAGE)$(if $(ARGS), $(ARGS))

# Read-only check of a deployed stage, either path: ARGS="--stack-name NAME" for a stack not
# named pixel-relay-<stage>.
verify: $(LOCAL_STAMP)
	$(if $(STAGE),,$(error STAGE is required: make verify STAGE=prod))
	$(BIN)/python -m devtools.deploy.verify --stage $(STAGE) $(ARGS)

# Roll a stage back (docs/deploy.md#rolling-back): on the CloudFormation path the alias live
# of both functions to the previous version, or COMMIT's, in seconds; on the chalice deploy
# path COMMIT deployed again from a git worktree. ARGS="--dry-run" says what it would do.
rollback: $(LOCAL_STAMP)
	$(if $(STAGE),,$(error STAGE is required: make rollback STAGE=prod [COMMIT=<commit>]))
	$(BIN)/python -m devtools.deploy.rollback --stage $(STAGE)$(if $(COMMIT), --commit $(COMMIT))$(if $(ARGS), $(ARGS))

ops: $(LOCAL_STAMP)
	$(BIN)/python -m devtools.ops $(ARGS)

# The GTM emulator's list of browser globals, merged with what this machine's Chromium has.
gtm-globals: $(STAMP)
	$(BIN)/python -m devtools.gtm.globals $(ARGS)

bench: $(LOCAL_STAMP)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
