# The two quick-start commands (make reproduce, make test) each build their own
# virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: reproduce test lint typecheck unit bench clean

$(BIN)/ipvslab: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(COMPILED)

# The install compiles setup.py's HOT_MODULES with mypyc; when one of them changes,
# compile again (ipvslab/__init__.py runs them as pure Python until then).
HOT_SOURCES := $(shell sed -n 's|^    "\(ipvslab/.*\.py\)",$$|src/\1|p' setup.py)
COMPILED := $(VENV)/.compiled
$(COMPILED): $(HOT_SOURCES) | $(BIN)/ipvslab
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

## The main job on its defaults: every symptom of the seed documents, simulated and
## measured, with the kernels, settings and dataplanes that cure it (ipvslab-reproduce/).
reproduce: $(BIN)/ipvslab $(COMPILED)
	$(BIN)/ipvslab reproduce

## The whole test suite: lint, type check, unit and property tests.
test: lint typecheck unit

lint: $(BIN)/ipvslab
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(BIN)/ipvslab
	$(BIN)/mypy

unit: $(BIN)/ipvslab $(COMPILED)
	$(BIN)/pytest

## Decisions/s and bytes per live entry at 1M entries: the pure-Python kernel, then
## the same code compiled with mypyc into build/compiled (optional; skipped if it fails).
bench: $(BIN)/ipvslab $(COMPILED)
	$(BIN)/python benchmarks/bench_decisions.py
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
