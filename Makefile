# notifyctl: `make run` for a first look, `make test` for the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One stamp per set of extras: `make run` installs what running needs and no more (the
# test tools - Playwright, schemathesis, hypothesis ... - are most of the download);
# `make test` and `make lint` add theirs. A changed pyproject.toml installs again.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
LINT_STAMP := $(VENV)/.installed-lint

.PHONY: run test lint bench screenshots vendor clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip  # a current resolver: the install takes half the time
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(LINT_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[lint]'
	touch $@

run: $(RUN_STAMP) ## the whole system on the default SQLite file, with demo data
	$(BIN)/notifyctl db upgrade  # a file from an earlier version gets the newest schema
	$(BIN)/notifyctl up --demo

test: $(TEST_STAMP) ## the whole suite (SQLite and the PostgreSQL on 127.0.0.1:5432), then at other hours
	$(BIN)/pytest
	$(BIN)/python -m tests.at_other_hours

lint: $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(RUN_STAMP) ## benchmarks; rewrites bench/RESULTS.md and bench/scale.png
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

screenshots: $(TEST_STAMP) ## re-take docs/admin-*.png with the browser tests (needs /usr/bin/chromium)
	UI_SCREENSHOTS=docs $(BIN)/pytest tests/test_web_ui_browser.py

vendor: ## re-fetch HTMX, Pico CSS, Swagger UI and ReDoc (pinned in fetch.sh) from the npm registry
	web/static/vendor/fetch.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
