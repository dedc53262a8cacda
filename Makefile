# Everything a newcomer needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser demo test test-fast bench faults lint format clean contracts

# What the relayer and its local stack need; the browser only `make test` needs.
setup: $(STAMP_PY) $(STAMP_NPM)

# Headless Chromium and its driver (Debian packages) for the status page's browser test.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(PY) -m devstack.demo

# Four workers, each with its own stack (the suite waits on processes far more than on CPU);
# a file stays on one worker, so module fixtures (an anvil, a fault world) are built once.
# The bytecode first, as the image has it: with PYTHONDONTWRITEBYTECODE (set on these
# machines) each of the suite's hundreds of relayer processes would compile the package again.
test: setup browser
	$(PY) -m compileall -q -f function devstack bench
	$(PY) -m pytest -q -n 4 --dist loadfile

test-fast: setup
	$(PY) -m pytest -q tests/unit

bench: setup
	$(PY) -m bench.run

# The large fault campaign (hundreds of SIGKILLs, outages, overlaps) on the real stack, after
# 20,000 schedules of the deterministic simulation: minutes, not hours.
faults: setup
	$(PY) -m devstack.sim --schedules 20000 --seed 1000000
	$(PY) -m devstack.faults --kills 300

lint: setup
	$(VENV)/bin/ruff check function main.py devstack tests bench
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format function main.py devstack tests bench

contracts: $(STAMP_NPM)
	npm run --silent build:contracts

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
