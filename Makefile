# One entry point for people and CI. Every target sets up what it needs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM := $(VENV)/.system-packages

.PHONY: run test test-faults postgres lint typecheck check schemas bench-deps bench clean

$(SYSTEM): scripts/system-packages.sh
	bash scripts/system-packages.sh
	@mkdir -p $(VENV) && touch $(SYSTEM)

$(STAMP): pyproject.toml $(SYSTEM)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	$(BIN)/python -m taskstream.dev_broker.local_kafka --fetch-only
	@touch $(STAMP)

## run: the whole system locally (Kafka, core, executor, monitor; SQLite). Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/taskstream dev

## postgres: install (if needed) and start the PostgreSQL the tests use; prints its URL
postgres:
	@bash scripts/postgres.sh

## test: the whole test suite, against a real Kafka broker and a real PostgreSQL.
## The server is started on every run (a process does not outlive the machine's session),
## so this is a command, not a stamp; the script is idempotent and fast when it is up.
test: $(STAMP)
	bash scripts/postgres.sh >/dev/null
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-faults: the fault round (kill -9 of a broker, the cluster and each service under
## load on a 3-node cluster, then the independent ledger), alone; `make test` runs it too
test-faults: $(STAMP)
	$(BIN)/python -m pytest -m fault_round -s tests/faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

## schemas: regenerate the JSON Schema files from the models
schemas: $(STAMP)
	$(BIN)/taskstream schemas

## bench-deps: redis-server (Debian) and the peers' Python packages (the `bench` extra)
bench-deps: $(STAMP)
	bash scripts/bench-packages.sh
	$(BIN)/python -m pip install --quiet -e '.[bench]'

## bench: every issue #6 benchmark in sequence (BENCH_SIZE=smoke for a quick check)
bench: bench-deps postgres
	bash bench/run-all.sh

clean:
	rm -rf $(VENV) .taskstream .pytest_cache .mypy_cache .ruff_cache
