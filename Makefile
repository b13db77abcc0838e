# deploygym: `make demo`, `make test` and `make docs` each do the whole set-up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := dataset-fashion-mnist ferret-datasets libegl1 libegl-mesa0 libgl1-mesa-dri
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test test-slow lint docs clean

setup: system-deps $(STAMP)

system-deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "Installing system packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray,docs]'
	touch $@

demo: setup
	$(BIN)/python -m agents.demo

# The suite without the long integration runs (marked slow): about 10 minutes on 2 cores.
test: setup
	$(BIN)/python -m pytest -q

# Only the long integration runs (every reproduction's smoke report, ...).
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check .

# The docs site (Sphinx + MyST + furo) into docs/_build/html; warnings are errors. Env pages and
# frames are generated from the envs at build time (DEPLOYGYM_DOCS_FRAMES=tiny: faster frames).
docs: setup
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build docs/_generated docs/envs
