# docpost: the two commands of the README, and what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
DEB_PACKAGES := poppler-utils docker-compose chromium

.PHONY: demo ui test test-fast bench lock debs clean

$(STAMP): pyproject.toml testbench/pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e . -e ./testbench
	# The editable build leaves docpost.egg-info in plugins/, which is on sys.path: Airflow would
	# then find the docpost plugin's entry point twice ("already registered", an import error).
	rm -rf plugins/docpost.egg-info
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use: poppler-utils (pdftoppm, pdftotext, pdffonts for the rendering
# tests), docker-compose v1 (checks docker-compose.yaml without a daemon) and chromium (the
# operator view's browser test drives it through Playwright).
debs:
	@{ command -v pdftoppm && command -v docker-compose && command -v chromium; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); fi; }

## The main job on embedded defaults.
demo: $(STAMP)
	$(BIN)/docpost demo

## The main job with Airflow's UI left running for an operator.
ui: $(STAMP)
	$(BIN)/docpost demo --ui

## The whole test suite (unit, integration, DAG tests): what CI runs.
test: $(STAMP) debs
	$(BIN)/python -m pytest -q -p no:cacheprovider

## Unit tests only (no services).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Every benchmark prints its figures. The nightly one defaults to the issue's 20,000 letters (hours
# on 2 cores); `make bench` runs it at 2,000: `make bench BENCH_NIGHTLY_ARGS=` for the full size.
BENCH_NIGHTLY_ARGS ?= --count 2000 --naive-count 100
bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; \
	  if [ "$$b" = benchmarks/bench_nightly.py ]; then $(BIN)/python $$b $(BENCH_NIGHTLY_ARGS) || exit 1; \
	  else $(BIN)/python $$b || exit 1; fi; done

## Re-resolve the lock file after changing dependencies in pyproject.toml.
# requirements.lock: everything for development and tests (both extras); docker/requirements.lock:
# the production image's subset, at the same versions.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --extra testbench --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements.lock --python-version 3.11 -o docker/requirements.lock

clean:
	rm -rf $(VENV) .docpost build *.egg-info plugins/*.egg-info testbench/*.egg-info
