# The two commands: `make dev` (run everything on an embedded Redis) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: dev test check lint docs bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

dev: $(VENV)/.installed-run
	$(BIN)/agent-sessions dev --port $(PORT)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench tools api.py worker.py
	$(BIN)/mypy
	$(BIN)/python tools/check_redis_boundary.py

# The documentation site (docs/, mkdocs.yml): the reference pages made again from the code, then built
# with --strict (a broken link, anchor or missing page fails) into build/site/.
docs: $(VENV)/.installed-test
	$(BIN)/python tools/reference_docs.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

check: test lint docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info

# Benchmark against the bare-handler baseline (needs wrk: `sudo apt-get install wrk`).
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A longer schemathesis run against /openapi.json (make test runs a short one).
fuzz: $(VENV)/.installed-test
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(BIN)/python -m pytest -q tests/e2e/test_fuzz.py
