# Everything a fresh machine needs: `make demo` and `make test` (README).
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
LABEL_STUDIO_SPEC ?= label-studio==1.23.2
VENV := .venv
LS_VENV := .venv-labelstudio
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test browser clean-venv

setup: $(VENV)/.installed $(LS_VENV)/.installed browser

# torch first, from TORCH_SPEC, so the project's range keeps that wheel (a bare range pulls a CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The Label Studio server is a service with its own pinned tree: it never shares the project's venv.
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q "$(LABEL_STUDIO_SPEC)"
	touch $@

# Debian's Chromium for the report and coder-UI browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (sudo apt-get install chromium) for the browser tests"; fi; }

demo: setup
	$(BIN)/bench demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV) $(LS_VENV)
