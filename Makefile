# Two commands do all set-up on a fresh machine (Python 3.11, JDK 17 + Maven, Debian packages):
#   make demo   install, start a real Kafka + PostgreSQL under .local/, run the demo, print counts
#   make test   install, start the runtime if it is down, lint, run every test tier, stop what it started
#   make bench  install the benchmarks' extra in .venv-bench, start the runtime, run bench/pipeline.py
#               on 20,000 events: a one-minute smoke run of all four consumers, whose figures are
#               start-up; the figures to compare: make bench BENCH_ARGS="--events 1000000"
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
IOC := $(BIN)/ioc
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PGLITE := deploy/local/pglite
# The benchmarks' own venv: the `bench` extra (Quix Streams, py-spy) caps pydantic below what the
# project resolves to, so installing it into .venv would change what `make test` runs on.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
BENCH_ARGS ?= --events 20000 --naive-seconds 10 --latency-seconds 10
PGLITE_STAMP := $(PGLITE)/node_modules/.installed-$(shell cat $(PGLITE)/package-lock.json | sha256sum | cut -c1-12)
ASYNCAPI := deploy/asyncapi
ASYNCAPI_STAMP := $(ASYNCAPI)/node_modules/.installed-$(shell cat $(ASYNCAPI)/package-lock.json | sha256sum | cut -c1-12)

.PHONY: demo test bench lint format up down status install install-test install-bench clean-local

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

# The WASM TimescaleDB that tests the `timescale` schema flavour (no TimescaleDB server here).
$(PGLITE_STAMP): $(PGLITE)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (install Node.js 20)"; exit 1; }
	cd $(PGLITE) && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	@rm -f $(PGLITE)/node_modules/.installed-* && touch $(PGLITE_STAMP)

# The official AsyncAPI parser and Modelina, which check the exported asyncapi.yaml.
$(ASYNCAPI_STAMP): $(ASYNCAPI)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (install Node.js 20)"; exit 1; }
	cd $(ASYNCAPI) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(ASYNCAPI)/node_modules/.installed-* && touch $(ASYNCAPI_STAMP)

install: $(STAMP)

$(BENCH_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --disable-pip-version-check -q -e '.[bench]'
	@rm -f $(BENCH_VENV)/.installed-* && touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

install-test: $(STAMP) $(PGLITE_STAMP) $(ASYNCAPI_STAMP)
	@bash deploy/local/install-test-tools.sh  # kcat and chromium: outside clients the tests drive

up: install
	$(IOC) dev up

down: install
	$(IOC) dev down

status: install
	$(IOC) dev status

demo: install
	$(IOC) dev up
	$(IOC) demo

bench: install install-bench
	$(IOC) dev up
	$(BENCH_VENV)/bin/python bench/pipeline.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-test
	bash deploy/local/run-tests.sh

clean-local:
	-$(IOC) dev down
	rm -rf .local
