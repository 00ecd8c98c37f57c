# make demo        - venv with the extension only, a demo production applied masterless into ./.demo/
# make test        - lint, docs, every test tier on Salt 3008, then the Salt 3006/3007 matrix
# make test-quick  - lint, docs, and every tier on Salt 3008 only (daily work)
# make docs        - the reference docs (Sphinx) into build/docs, failing on any warning
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   := $(CURDIR)/.demo
# OS packages. The extension itself: libarchive (unpacking), gnupg (repository keys).
# Only the tests: debootstrap (the system tier's Debian root), curl, chromium (the fleet
# report checked in a real browser), desktop-file-utils (launcher entries validated),
# packer (examples/packer validated; the test skips, saying so, where it is missing).
RUNTIME_PACKAGES := libarchive13 gnupg ca-certificates
TEST_PACKAGES    := debootstrap curl chromium desktop-file-utils packer
# The tiers whose files run side by side under pytest-xdist (each file starts its own master or
# loaders), and those that run alone: they time faults and applies, or load the whole machine.
TEST_WORKERS   ?= 3
PARALLEL_TIERS := tests/unit tests/functional tests/integration
ALONE_TIERS    := tests/faults tests/system tests/scale
PYTEST         := $(PY) -m pytest -q -p no:cacheprovider --durations=20
XDIST          := -n $(TEST_WORKERS) --dist loadfile
export TEST_WORKERS
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP    := $(VENV)/.installed-tests

.PHONY: all venv venv-tests demo test test-quick matrix matrix-venvs lint docs test-unit test-integration test-system test-faults test-scale bench bench-scale clean

all: test

# Install the named Debian packages that are missing (as root), or say which are.
define os_packages
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing OS packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "note: missing OS packages (install them as root):$$missing"; fi
endef

$(RUNTIME_STAMP): setup.cfg pyproject.toml constraints.txt
	$(call os_packages,$(RUNTIME_PACKAGES))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP)
	$(call os_packages,$(TEST_PACKAGES))
	$(PY) -m pip install -q -c constraints.txt -e '.[tests,lint,docs]'
	touch $@

venv: $(RUNTIME_STAMP)
venv-tests: $(TEST_STAMP)

demo: venv
	$(PY) demo/build.py $(DEMO)
	$(VENV)/bin/salt-call --local -c $(DEMO)/etc state.apply workstation --state-output=terse --state-verbose=False
	$(PY) demo/show.py $(DEMO)
	$(PY) demo/launchers_demo.py $(DEMO)
	$(PY) demo/show.py --where $(DEMO)

# The matrix's venvs are built while lint, docs and the main suite run.
test: venv-tests
	$(MAKE) -j2 test-quick matrix-venvs
	$(PYTHON) tests/matrix.py

test-quick: lint docs
	$(PYTEST) $(XDIST) $(PARALLEL_TIERS)
	$(PYTEST) $(ALONE_TIERS)

# The tiers that touch Salt's interfaces against Salt 3006 (Python 3.10) and 3007.
matrix: venv-tests
	$(PYTHON) tests/matrix.py

matrix-venvs:
	$(PYTHON) tests/matrix.py --build

# The architecture's import rules (.importlinter): core never imports loader code or Salt,
# capabilities never import each other, no import cycles. Then ruff (lint and format),
# yamllint on plain YAML (.yamllint), salt-lint on the formula's SLS.
lint: venv-tests
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict pillar_examples formulas .yamllint
	$(VENV)/bin/salt-lint formulas/workstation/*.sls

# The reference docs: the loader modules' docstrings (docs/ref/) and the Markdown guides
# (docs/*.md, through myst-parser). Any warning fails the build, as in CI; -E rereads
# every page, since an incremental build would not repeat an unchanged page's warnings.
docs: venv-tests
	$(PY) -m sphinx -W --keep-going -E -q -b html docs build/docs

test-unit: venv-tests
	$(PY) -m pytest -q $(XDIST) tests/unit

test-integration: venv-tests
	$(PY) -m pytest -q $(XDIST) tests/functional tests/integration

test-system: venv-tests
	$(PY) -m pytest -q -m system tests/system -rs

test-faults: venv-tests
	$(PY) -m pytest -q -p no:cacheprovider -m faults tests/faults -rs

# 50 minions on one master; skips (saying why) with less than 10 GiB of available memory.
test-scale: venv-tests
	$(PY) -m pytest -q -p no:cacheprovider -m scale tests/scale -rs

bench: venv-tests
	$(PY) benchmarks/run.py

bench-scale: venv-tests
	$(PY) benchmarks/scale.py

clean:
	rm -rf $(VENV) $(VENV)-salt* $(DEMO) build dist *.egg-info
