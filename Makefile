# gpupool: `make run` starts it on embedded defaults, `make test` runs the whole suite.
# The embedded Ray cluster runs jobs as an unprivileged user (when gpupool runs as root), who must
# be able to run the virtualenv's interpreter: prefer the system's Python 3.11+ to one kept under
# a private home directory (pyenv's under /root).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do $$p -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .gpupool

.PHONY: run test lint typecheck contracts bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gpupool serve --demo --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# Two workers, each file on one of them (a file's module-scoped fixtures, such as the browser
# tests' live portal, are made once); each worker starts its own Ray cluster.
test: lint typecheck contracts
	$(BIN)/pytest -n 2 --dist loadfile

ONE_CORE := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)

# The benches run on SQLite; on PostgreSQL too when a server answers on 127.0.0.1:5432 (or
# GPUPOOL_BENCH_DATABASE_URL names one).
PG_BENCH := postgresql+psycopg://postgres@127.0.0.1:5432/test
BENCH_PG := $(or $(GPUPOOL_BENCH_DATABASE_URL),$(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo $(PG_BENCH)))

bench: $(STAMP)
	$(ONE_CORE) $(BIN)/python -m bench.admission
	GPUPOOL_BENCH_DATABASE_URL=$(BENCH_PG) $(ONE_CORE) $(BIN)/python -m bench.cycle
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.submissions --database-url $(or $(BENCH_PG),sqlite)
	$(BIN)/python -m bench.pages
	$(ONE_CORE) $(BIN)/python -m bench.simulate

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
