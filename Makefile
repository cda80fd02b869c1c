# kvha — the two commands of a fresh machine are `make demo` and `make test`.
# Everything installs itself: a virtual environment from pyproject.toml, and the testbed's
# Kubernetes binaries built from Go modules into ~/.cache/kvha-testbed (first time: ~30-40 min).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv testbed testbed-up test unit lint demo bench crds bundle clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo     start a local cluster, fail a host, watch its VMs come back"
	@echo "make test     lint, type-check, unit, property and integration tests"
	@echo "make testbed  build (or reuse) the control-plane binaries"
	@echo "make bench    print the benchmark figures"
	@echo "make crds     regenerate crds/ from the models (then make bundle)"
	@echo "make bundle   re-render deploy/kvha.yaml and the chart's CRD copy"
	@echo "make testbed-up TESTBED_ARGS='--nodes 3'   a testbed to explore with kubectl"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

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
	$(VENV)/bin/ruff check operator testbed tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit

test: lint testbed
	$(PY) -m pytest tests/unit tests/integration

demo: testbed
	$(PY) -m kvha_testbed.demo $(DEMO_ARGS)

bench: testbed
	$(PY) bench/core_bench.py
	$(PY) bench/testbed_bench.py
	$(PY) bench/failover_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
