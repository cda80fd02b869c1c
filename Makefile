# kvha — the two commands of a fresh machine are `make demo` and `make test`.
# Everything installs itself: a virtual environment from pyproject.toml, and the testbed's
# Kubernetes binaries built from Go modules into ~/.cache/kvha-testbed (first time: ~15 min on 2 cores).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)

.PHONY: venv lock recipes testbed testbed-up test unit integration lint format demo bench crds bundle mutation clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo     start a local cluster, fail a host, watch its VMs come back"
	@echo "make test     lint, type-check, unit, property and integration tests"
	@echo "make unit     the pure tests only (no binaries, no network)"
	@echo "make mutation mutation score of detection/fencing/planner/reconcile against the unit tests (MUTATION_JOBS=1)"
	@echo "make integration  the tests that need the testbed (real control plane, helm)"
	@echo "make recipes  prove every testbed build recipe resolves from an empty cache (no compile)"
	@echo "make testbed  build (or reuse) the control-plane binaries"
	@echo "make format   ruff format + autofix"
	@echo "make lock     re-pin the dev environment (requirements-dev.lock)"
	@echo "make bench    print the benchmark figures"
	@echo "make crds     regenerate crds/ from the models (then make bundle)"
	@echo "make bundle   re-render deploy/kvha.yaml and the chart's CRD copy"
	@echo "make testbed-up TESTBED_ARGS='--nodes 3'   a testbed to explore with kubectl"

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Re-pin every dev tool and dependency after changing pyproject.toml (then commit the lock).
lock:
	rm -rf $(VENV).lock && $(PYTHON) -m venv $(VENV).lock
	$(VENV).lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' $(LOCK); $(VENV).lock/bin/pip freeze --exclude-editable | grep -v '^kvha'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf $(VENV).lock

# Every build recipe resolved from an empty cache root against the module proxy, without the long
# compile: a cached binary must never hide a version the proxy no longer serves.
recipes: venv
	$(PY) -m kvha_testbed.build --check-recipes

testbed: venv
	$(PY) -m kvha_testbed.build

crds: venv
	$(PY) -m kvha.crdgen

bundle: crds testbed
	hack/render-bundle.sh

testbed-up: testbed
	$(PY) -m kvha_testbed.cli up $(TESTBED_ARGS)

lint: venv
	$(PY) -m kvha.crdgen --check
	$(VENV)/bin/ruff format --check operator testbed tests bench hack
	$(VENV)/bin/ruff check operator testbed tests bench hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format operator testbed tests bench hack
	$(VENV)/bin/ruff check --fix operator testbed tests bench hack

# Pure: no binaries, no network, no cluster.
unit: venv
	$(PY) -m pytest tests/unit

# mutmut in its own venv (requirements-mutation.txt on top of the dev lock): the dev and CI venvs
# never carry it. Results are kept in .mutation/mutants/, so a second run re-tests only what changed.
MUTATION_VENV := .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed-$(shell cat pyproject.toml $(LOCK) requirements-mutation.txt | sha1sum | cut -c1-12)

$(MUTATION_STAMP): pyproject.toml $(LOCK) requirements-mutation.txt
	$(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MUTATION_VENV)/bin/python -m pip install --quiet -c $(LOCK) -e '.[dev]' -r requirements-mutation.txt
	@rm -f $(MUTATION_VENV)/.installed-* && touch $@

mutation: $(MUTATION_STAMP)
	VENV=$(MUTATION_VENV) hack/mutation.sh

# Needs the testbed's binaries: a real control plane, helm.
integration: testbed
	$(PY) -m pytest tests/integration

test: lint recipes testbed
	$(PY) -m pytest tests/unit tests/integration

demo: testbed
	$(PY) -m kvha_testbed.demo $(DEMO_ARGS)

bench: testbed
	$(PY) bench/core_bench.py
	$(PY) bench/testbed_bench.py
	$(PY) bench/failover_bench.py
	$(PY) bench/scale_bench.py

clean:
	rm -rf $(VENV) $(MUTATION_VENV) .mutation .pytest_cache .mypy_cache .ruff_cache
