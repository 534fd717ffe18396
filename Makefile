# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv dev clean

venv: $(STAMP)

# The virtualenv is built from pinned versions (requirements.lock) and rebuilt when they change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/retail demo $(ARGS)

dev: $(STAMP)
	$(BIN)/retail dev $(ARGS)

# The CLI's tests once more on a 60-column terminal: rich wraps its output at the width, and
# no test may depend on the terminal it runs in.
CLI_TESTS := tests/test_cli.py tests/test_cli_returns.py tests/test_bulk_and_status.py \
	tests/test_reconcile_cli.py tests/test_apikeys.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest $(ARGS)
	COLUMNS=60 $(BIN)/pytest -q $(CLI_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .data
