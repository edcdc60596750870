# The one entry point: `make run` serves the demo, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install run test test-scale lint format locales locales-extract locales-update browser bench clean schema

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) locales

# Compiles the gettext catalogues the bot answers with.
locales: $(STAMP)
	@if ls locales/*/LC_MESSAGES/*.po >/dev/null 2>&1; then $(VENV)/bin/pybabel -q compile -d locales -D messages; fi

# Collects the bot's strings into locales/messages.pot, then merges them into each language's catalogue.
locales-extract: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output -o locales/messages.pot .

locales-update: locales-extract
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

# Debian's Chromium for the Playwright tests (Playwright's own browser download does not work here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium could not be installed: browser tests will be skipped"; \
		else echo "no /usr/bin/chromium and no root: browser tests will be skipped"; fi; \
	fi

run: install
	$(PY) app.py demo
	@echo ""
	@echo "  Doorstep is serving the demo day at http://$(HOST):$(PORT)"
	@echo "  Chat as a recipient: http://$(HOST):$(PORT)/sandbox"
	@echo "  Agents' console:     http://$(HOST):$(PORT)/console"
	@echo "    sign in as agent@maple-home.demo / doorstep-demo (Maple Home)"
	@echo "    or agent@north-outfitters.demo / doorstep-demo, admin@maple-home.demo / doorstep-demo (dashboard)"
	@echo "  API docs:            http://$(HOST):$(PORT)/docs"
	@echo ""
	PORT=$(PORT) $(PY) app.py serve --host $(HOST) --port $(PORT)

test: install browser
	$(PY) -m pytest -q

test-scale: install
	$(PY) -m pytest -q -m scale -o addopts="-p no:cacheprovider"; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var/*.db var/*.db-wal var/*.db-shm

# The schema has not shipped yet: regenerate the one initial migration from core/models.py.
schema: $(STAMP)
	rm -f migrations/versions/0001_initial_schema.py /tmp/doorstep-schema.db
	$(PY) -c "from core.db import alembic_config; from alembic import command; \
		command.revision(alembic_config('sqlite:////tmp/doorstep-schema.db'), message='initial schema', \
		autogenerate=True, rev_id='0001')"
	$(VENV)/bin/ruff format migrations/versions >/dev/null
