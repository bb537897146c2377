# The two commands a newcomer needs: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One Ray start per run, loopback only, no usage reporting.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: quickstart test install clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list or the pins change.
$(STAMP): $(BIN)/python pyproject.toml constraints-cpu.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e '.[test,optuna]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/lmnas assets fetch
	$(BIN)/lmnas run studies/quickstart.yaml

# Two workers: an integration test spends most of its time waiting on Ray or a subprocess, so two
# test processes keep 2 cores busy (each starts its own loopback Ray head; caches take locks).
# No warnings plugin: xdist rebuilds each captured warning in the controller by importing its module,
# and two workers' warnings from Ax / BoTorch imported at once deadlock the controller's imports.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -p no:warnings --durations=15

clean-venv:
	rm -rf $(VENV)
