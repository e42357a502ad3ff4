# Two entry points for a fresh machine: `make run` (install, then chat on the bundled corpus)
# and `make test` (install, then the whole test suite). Installing puts torch==2.13.0 in first:
# that version is a local CPU wheel, any other pulls gigabytes of CUDA packages.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-app run test browser bench clean

# The library and the app (make run); `make install` adds what the tests, evaluation and training need.
install-app: $(VENV)/.installed-app
install: $(VENV)/.installed

$(VENV)/.venv-made:
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	touch $@

$(VENV)/.installed-app: pyproject.toml $(VENV)/.venv-made
	$(PIP) install -e ".[app]"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.venv-made
	$(PIP) install -e ".[test]"
	touch $@ $(VENV)/.installed-app

run: install-app
	$(PY) app.py

# Headless Chromium and its driver for the browser test, from Debian's packages.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver >/dev/null; fi; \
	fi

# The import layers first (pyproject.toml, [tool.importlinter]), then the suite. The Milvus tests run against a
# `milvus-lite server` on 127.0.0.1 (a free port, a temporary data folder), started before pytest and stopped
# whatever happens (tests/milvus_server.py sets QA_MILVUS_URL).
test: install browser
	$(VENV)/bin/lint-imports
	$(PY) tests/milvus_server.py $(PY) -m pytest

bench: install
	$(PY) -m benchmarks.bench retrieval

clean:
	rm -rf $(VENV) .pytest_cache eval/out
