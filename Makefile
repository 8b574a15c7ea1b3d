# The two commands the README promises, on a fresh clone with only cargo, Python 3.11 and pip:
#   make run    set up .venv, build the extension (release), run the engine's embedded default
#   make test   set up .venv, build, run cargo test, the stub check and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ABSVENV := $(abspath $(VENV))
NATIVE_SRC := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml pyproject.toml

.PHONY: run test build bench rust-test py-test stubtest browser clean

run: build
	$(BIN)/synesthesia run

test: build rust-test stubtest py-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip >= 25.1 reads PEP 735 dependency groups straight from pyproject.toml.
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q "maturin>=1.7,<2" "numpy>=1.26"
	$(BIN)/python -m pip install -q --no-deps "silero-vad>=5.1,<7"  # the VAD's ONNX file; its deps would pull torch
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.base
	$(BIN)/python -m pip install -q --group test
	touch $@

$(VENV)/.built: $(NATIVE_SRC) $(VENV)/.base
	VIRTUAL_ENV=$(ABSVENV) $(BIN)/maturin develop --release --quiet
	touch $@

build: $(VENV)/.built

rust-test:
	cargo test --workspace --quiet

stubtest: build $(VENV)/.test-deps
	$(BIN)/python -m mypy.stubtest synesthesia._native --allowlist python/synesthesia/_native.stubtest-allowlist

py-test: build $(VENV)/.test-deps browser
	$(BIN)/python -m pytest

# The viewer's real-browser tests need Debian's chromium: install it when it is missing and we
# can (root with apt-get); otherwise say so loudly. The tests then skip, or fail when CI=true.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$SYNESTHESIA_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing Debian's chromium for the viewer's browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null || \
		echo "!!! make: installing chromium FAILED: the real-browser viewer tests will skip (fail under CI=true)" >&2; \
	else \
		echo "!!! make: chromium is missing and cannot be installed here (needs root and apt-get):" >&2; \
		echo "!!!       the real-browser viewer tests will SKIP (and FAIL under CI=true)" >&2; \
	fi

bench: build $(VENV)/.test-deps
	$(BIN)/python bench/kernels.py --out bench/results/kernels.md
	$(BIN)/python bench/stream.py --out bench/results/stream.md

clean:
	rm -rf $(VENV) target python/synesthesia/_native*.so
