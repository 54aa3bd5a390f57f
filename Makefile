# Everything a fresh machine needs: Python 3.11 and make. The venv and pinned deps are created here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean promtool fuzz

# The install compiles the core (sidecar/core/*.pyx) with Cython and gcc: rebuild when it changes.
$(STAMP): pyproject.toml requirements.lock setup.py $(wildcard sidecar/core/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sidecar serve

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests bench fuzz

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

# Coverage-guided fuzzing of the compiled core with atheris (its wheel ships libFuzzer and the
# AddressSanitizer runtime). With clang, a copy of the core is built with ASan and libFuzzer's
# coverage counters (build/fuzz) and the fuzzer steers by the C code's branches; without clang
# (Debian: apt-get install clang) it still runs, blind to the C code's coverage, and says so.
# Leak detection is off: LeakSanitizer reports the interpreter's own allocations at exit.
FUZZ_SECONDS ?= 600
FUZZ_DIR := build/fuzz
fuzz: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[fuzz]'
	mkdir -p $(FUZZ_DIR)/core $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	$(BIN)/python -m fuzz.fuzz_wire --seed $(FUZZ_DIR)/corpus
	@if command -v clang >/dev/null 2>&1; then \
	  $(BIN)/cython -3 sidecar/core/_wire.pyx -o $(FUZZ_DIR)/_wire.c && \
	  clang -O1 -g -fno-omit-frame-pointer -fsanitize=address,fuzzer-no-link -fPIC \
	    -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	    -c $(FUZZ_DIR)/_wire.c -o $(FUZZ_DIR)/_wire.o && \
	  clang -shared $(FUZZ_DIR)/_wire.o \
	    -o $(FUZZ_DIR)/core/_wire$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') && \
	  SIDECAR_FUZZ_CORE=$(FUZZ_DIR)/core ASAN_OPTIONS=detect_leaks=0 \
	  LD_PRELOAD="$$($(BIN)/python -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
	  $(BIN)/python -m fuzz.fuzz_wire -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/ $(FUZZ_DIR)/corpus; \
	else \
	  echo "note: clang is missing (Debian: apt-get install clang), so the core cannot be built with" \
	       "AddressSanitizer and coverage counters: fuzzing it blind to its C code's branches"; \
	  $(BIN)/python -m fuzz.fuzz_wire -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/ $(FUZZ_DIR)/corpus; \
	fi

clean:
	rm -rf $(VENV) data build
