# notifyctl: `make run` for a first look, `make test` for the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench screenshots vendor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## the whole system on the default SQLite file, with demo data
	$(BIN)/notifyctl db upgrade  # a file from an earlier version gets the newest schema
	$(BIN)/notifyctl up --demo

test: $(STAMP) ## the whole suite (SQLite and the PostgreSQL on 127.0.0.1:5432), then at other hours
	$(BIN)/pytest
	$(BIN)/python -m tests.at_other_hours

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP) ## benchmarks; rewrites bench/RESULTS.md and bench/scale.png
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

screenshots: $(STAMP) ## re-take docs/admin-*.png with the browser tests (needs /usr/bin/chromium)
	UI_SCREENSHOTS=docs $(BIN)/pytest tests/test_web_ui_browser.py

vendor: ## re-fetch HTMX, Pico CSS, Swagger UI and ReDoc (pinned in fetch.sh) from the npm registry
	web/static/vendor/fetch.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
