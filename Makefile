# make demo   - venv, extension installed, a demo production applied masterless into ./.demo/
# make test   - venv if needed, then every test tier (the system tier says why when it skips)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# OS packages the extension and the tests use: libarchive (unpacking), gnupg
# (repository keys), debootstrap (the system tier's Debian root), chromium (the
# fleet report checked in a real browser), desktop-file-utils (launcher entries).
OS_PACKAGES := libarchive13 gnupg debootstrap curl ca-certificates chromium desktop-file-utils
DEMO   := $(CURDIR)/.demo

.PHONY: all venv os-packages demo test lint test-unit test-integration test-system test-faults bench clean

all: test

os-packages:
	@missing=""; for p in $(OS_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing OS packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "note: missing OS packages (install them as root):$$missing"; fi

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[tests]'
	touch $(STAMP)

venv: os-packages $(STAMP)

demo: venv
	$(PY) demo/build.py $(DEMO)
	$(VENV)/bin/salt-call --local -c $(DEMO)/etc state.apply workstation --state-output=terse --state-verbose=False
	$(PY) demo/show.py $(DEMO)
	$(PY) demo/launchers_demo.py $(DEMO)

test: venv lint
	$(PY) -m pytest -q -p no:cacheprovider

# The architecture's import rules (.importlinter): core never imports loader code or Salt,
# capabilities never import each other, no import cycles.
lint: venv
	$(VENV)/bin/lint-imports --no-cache

test-unit: venv
	$(PY) -m pytest -q tests/unit

test-integration: venv
	$(PY) -m pytest -q tests/functional tests/integration

test-system: venv
	$(PY) -m pytest -q -m system tests/system -rs

test-faults: venv
	$(PY) -m pytest -q -p no:cacheprovider -m faults tests/faults -rs

bench: venv
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
