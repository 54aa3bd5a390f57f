# Everything a fresh machine needs: Python 3.11 and make. The venv and pinned deps are created here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean promtool fuzz

# The install compiles the core (sidecar/core/*.pyx, with the *.pxd they cimport) with Cython and gcc:
# rebuild when it changes.
$(STAMP): pyproject.toml requirements.lock setup.py $(wildcard sidecar/core/*.pyx sidecar/core/*.pxd)
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
# AddressSanitizer runtime): fuzz.fuzz_wire (protobuf scans), fuzz.fuzz_ndjson (NDJSON events) and
# fuzz.fuzz_trigrams (log blocks' token filters), FUZZ_SECONDS split between them
# (FUZZ_TARGETS=fuzz_ndjson for one). With clang, a copy of each core module is built with ASan
# and libFuzzer's coverage counters (build/fuzz/core) and the fuzzer steers by the C code's
# branches; without clang (Debian: apt-get install clang) it still runs, blind to the C code's
# coverage, and says so. Leak detection is off: LeakSanitizer reports the
# interpreter's own allocations at exit. Every target runs even if one fails; make fails if any did.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= fuzz_wire fuzz_ndjson fuzz_trigrams
FUZZ_DIR := build/fuzz
FUZZ_EACH = $$(( $(FUZZ_SECONDS) / $(words $(FUZZ_TARGETS)) ))
PY_CONFIG = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.$(1))')
# $(call asan_core,_wire): sidecar/core/_wire.pyx built with ASan and coverage counters into $(FUZZ_DIR)/core
asan_core = $(BIN)/cython -3 sidecar/core/$(1).pyx -o $(FUZZ_DIR)/$(1).c && \
	clang -O1 -g -fno-omit-frame-pointer -fsanitize=address,fuzzer-no-link -fPIC \
	  -I"$(call PY_CONFIG,get_paths()["include"])" -c $(FUZZ_DIR)/$(1).c -o $(FUZZ_DIR)/$(1).o && \
	clang -shared $(FUZZ_DIR)/$(1).o -o $(FUZZ_DIR)/core/$(1)$(call PY_CONFIG,get_config_var("EXT_SUFFIX"))
# $(call fuzz_run,fuzz_wire,ENV=...): one target for its share of FUZZ_SECONDS; its corpus and crashes apart
fuzz_run = $(2) $(BIN)/python -m fuzz.$(1) -max_total_time=$(FUZZ_EACH) -max_len=65536 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$(1)- $(FUZZ_DIR)/corpus/$(1) \
	|| failed="$$failed $(1)";
ASAN_RUN = SIDECAR_FUZZ_CORE=$(FUZZ_DIR)/core ASAN_OPTIONS=detect_leaks=0 \
	LD_PRELOAD="$$($(BIN)/python -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so"
fuzz: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[fuzz]'
	mkdir -p $(FUZZ_DIR)/core $(FUZZ_DIR)/crashes $(addprefix $(FUZZ_DIR)/corpus/,$(FUZZ_TARGETS))
	$(foreach t,$(FUZZ_TARGETS),$(BIN)/python -m fuzz.$(t) --seed $(FUZZ_DIR)/corpus/$(t) &&) true
	@failed=; if command -v clang >/dev/null 2>&1; then \
	  $(call asan_core,_wire) && $(call asan_core,_ndjson) && $(call asan_core,_trigrams) || exit 1; \
	  $(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(ASAN_RUN))) \
	else \
	  echo "note: clang is missing (Debian: apt-get install clang), so the core cannot be built with" \
	       "AddressSanitizer and coverage counters: fuzzing it blind to its C code's branches"; \
	  $(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t))) \
	fi; \
	if [ -n "$$failed" ]; then echo "fuzzing found a problem in:$$failed (see $(FUZZ_DIR)/crashes)"; exit 1; fi

clean:
	rm -rf $(VENV) data build
