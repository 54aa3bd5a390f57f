# Everything a fresh machine needs: Python 3.11 and make. The venv and pinned deps are created here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean promtool

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

test: $(STAMP) lint typecheck promtool
	$(BIN)/pytest -q

# promtool (and the prometheus server) for the metrics tests: Debian's package, installed when
# missing if we are root with apt-get; else a note, and those tests skip saying why. A
# policy-rc.d that exits 101 keeps the package's postinst from starting a prometheus service
# (which would take port 9090); one already there (Docker images ship one) is left as it is.
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing the Debian package prometheus (promtool) for the metrics tests"; \
	  made=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends prometheus >/dev/null \
	    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } \
	    || echo "note: apt-get could not install prometheus: the promtool tests will be skipped"; \
	  if [ -n "$$made" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	else \
	  echo "note: promtool is missing and cannot be installed here (needs root and apt-get;" \
	       "Debian/Ubuntu: apt-get install prometheus): the promtool tests will be skipped"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.dedupe
	$(BIN)/python -m bench.logs
	$(BIN)/python -m bench.events
	$(BIN)/python -m bench.analytics
	$(BIN)/python -m bench.metrics

clean:
	rm -rf $(VENV) data
