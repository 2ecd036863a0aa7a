# Every command a person runs. `make run` and `make test` need nothing but Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000

.PHONY: run test test-pg lint typecheck format bench soak demo clean

# The exact, hash-checked set of requirements-dev.lock (CI's legs included), then the project
# itself without touching its dependencies; `make lock` refreshes the lock files.
$(STAMP): pyproject.toml requirements-dev.lock requirements-build.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-build.lock
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## Re-resolve the lock files from pyproject.toml's ranges (pinned versions with sha256 hashes):
## requirements.lock (the image), requirements-dev.lock (make, CI), requirements-build.lock.
.PHONY: lock
LOCK := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links --no-emit-index-url
lock: $(STAMP)
	$(BIN)/pip install --quiet "pip-tools==7.6.2"
	$(LOCK) -o requirements.lock pyproject.toml
	$(LOCK) --extra dev -o requirements-dev.lock pyproject.toml
	$(LOCK) -o requirements-build.lock requirements-build.in

## Serve the API with its worker and scheduler on the embedded default (SQLite, in-process broker),
## with a demo organization (created once) whose token is printed; `make run PORT=9000`.
run: $(STAMP)
	$(BIN)/certs run --demo --port $(PORT)

## A new demo organization (every status) and a token for it.
demo: $(STAMP)
	$(BIN)/certs db upgrade
	$(BIN)/certs demo

## The test suite on the embedded default (SQLite + in-process broker).
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

## The same suite on PostgreSQL (fresh database, non-owner app role) and Redis.
test-pg: $(STAMP)
	CERTS_TEST_BACKEND=postgres REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	  $(BIN)/pytest -q -p no:cacheprovider -m "not slow"

## Style, then the import contracts (pyproject.toml [tool.importlinter]): an upward import fails.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## Static types: mypy, strict on the source packages (pyproject.toml [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks against DATABASE_URL (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python -m bench all

## Long reliability runs (soak, load, faults at full size).
soak: $(STAMP)
	SOAK=1 CERTS_TEST_BACKEND=postgres REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	  $(BIN)/pytest -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache

## The Helm chart, with the pinned helm (.ci/install-helm) and kubernetes-validate. CI=true: a
## missing tool fails the check instead of skipping it.
.PHONY: chart-check
chart-check: $(STAMP)
	helm="$$(.ci/install-helm)" && HELM="$$helm" CI=true $(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_chart.py
