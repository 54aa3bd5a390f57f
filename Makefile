# Everything a fresh machine needs: Python 3.11 and make. The venv and pinned deps are created here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sidecar serve

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.dedupe
	$(BIN)/python -m bench.logs
	$(BIN)/python -m bench.events
	$(BIN)/python -m bench.analytics

clean:
	rm -rf $(VENV) data
