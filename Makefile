# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-anchor clean systemd-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/roost demo

test: $(VENV)/.dev-installed
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# roost as a real systemd service in a systemd-nspawn container (root; see the script).
systemd-test: $(VENV)/.dev-installed
	tests/systemd/run_nspawn.sh

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

# Home Assistant 2024.3.3 from PyPI, once, in its own venv (bench/.ha-venv, ~1 GiB): the
# anchor the performance targets are ratios to (../shared/anchors/README.md).
HA_VENV := bench/.ha-venv
$(HA_VENV)/.installed:
	$(PYTHON) -m venv $(HA_VENV)
	$(HA_VENV)/bin/python -m pip install --quiet homeassistant==2024.3.3 securetar janus \
		psutil-home-assistant pillow
	touch $@

bench-anchor: $(VENV)/.installed $(HA_VENV)/.installed
	$(BIN)/python bench/anchor.py

clean:
	rm -rf $(VENV)
