# Group Admin — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
CHROMIUM ?= /usr/bin/chromium
PORT ?= 8000

# The development server runs with DEBUG on unless the environment says otherwise, and links in
# mail (the worker's too) point at the server `make run` starts unless SITE_URL is set in the environment.
RUN_ENV := DEBUG=$${DEBUG:-true} SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)}

.PHONY: help setup setup-dev browser run test test-fast lint format migrate seed benchmark lock clean

help:
	@echo "make run    set up, migrate, seed the sandbox, read it into the mirror, and serve http://127.0.0.1:8000"
	@echo "           with the background worker beside the server (PORT=8001 for another port)"
	@echo "make test   set up, lint and run the whole test suite (browser tests included)"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make format apply ruff's fixes and formatting"
	@echo "make benchmark  time the group pages' reads, a flood of writes past the rate limit, audit search,"
	@echo "                the mirror at 2,000 groups / 50,000 memberships, and pasted email lists (prints figures)"

$(PY):
	@python=$$(scripts/find-python) && echo "Creating $(VENV) with $$python" && "$$python" -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.runtime-installed $@

setup: $(VENV)/.runtime-installed

setup-dev: $(VENV)/.dev-installed

# Browser tests drive Debian's Chromium; Playwright's own browser download cannot work offline.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "Installing Chromium for the browser tests (apt-get)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		|| { echo "Could not install chromium; install it or set CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	fi

migrate: setup
	$(RUN_ENV) $(MANAGE) migrate --no-input

# Demo data for the sandbox workspace (skipped when it already has data) and the demo accounts.
seed: migrate
	$(RUN_ENV) $(MANAGE) seed_sandbox
	$(RUN_ENV) PORT=$(PORT) $(MANAGE) ensure_demo_users

# The mirror is read once before the server starts, so the group list is full at first sight; the
# background worker then runs beside the server (queued refreshes, the periodic jobs) and stops with it.
# A failed first sync (Segment down, a refused token) never keeps the server from starting; Ctrl-C
# during the sync still stops everything.
run: seed
	@$(RUN_ENV) $(MANAGE) sync_mirror; status=$$?; \
	if [ $$status -ge 128 ]; then exit $$status; fi; \
	if [ $$status -ne 0 ]; then \
		echo "The first sync of the mirror failed (see above): starting anyway. The group list and People stay empty or" >&2; \
		echo "as of the last sync until the worker's next sync succeeds; Refresh on the group list asks for one now." >&2; \
	fi
	@$(RUN_ENV) $(MANAGE) run_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT; \
	$(RUN_ENV) $(MANAGE) runserver 127.0.0.1:$(PORT)

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: setup-dev browser lint
	CHROMIUM=$(CHROMIUM) $(VENV)/bin/pytest $(PYTEST_ARGS)

# Prints how long the group pages' upstream reads take against a local sandbox server, then
# floods writes past the rate limit while timing /healthz and a group page.
benchmark: seed
	$(RUN_ENV) $(MANAGE) benchmark_reads $(BENCHMARK_ARGS)
	$(RUN_ENV) $(MANAGE) benchmark_writes $(BENCHMARK_WRITES_ARGS)
	$(RUN_ENV) $(MANAGE) benchmark_audit $(BENCHMARK_AUDIT_ARGS)
	$(RUN_ENV) $(MANAGE) benchmark_mirror $(BENCHMARK_MIRROR_ARGS)
	$(RUN_ENV) $(MANAGE) benchmark_emails

# Everything but the browser tests, for a quick loop while editing.
test-fast: setup-dev
	$(VENV)/bin/pytest -m "not browser" $(PYTEST_ARGS)

# The Docker image installs from requirements.lock with --require-hashes: regenerate it after
# changing requirements.txt (pip-tools runs in a throwaway environment).
lock: setup
	@tmp=$$(mktemp -d) && $(PY) -m venv $$tmp && $$tmp/bin/pip install --quiet pip-tools==7.6.2 \
	&& $$tmp/bin/pip-compile --quiet --generate-hashes --strip-extras --no-header --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		--output-file requirements.lock requirements.txt \
	&& rm -rf $$tmp && echo "requirements.lock updated"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles artifacts
