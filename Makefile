# Quarry's two commands: `make demo` (set up, then answer a question about assets/demo with a
# real local model) and `make test` (set up, then every test: Rust incl. the real 0.5B model,
# UI unit tests, the REPL harness's pytest, and the desktop end-to-end smoke test under Xvfb).
#
# Models go to $QUARRY_MODELS_DIR, else the user's data dir (~/.local/share/quarry/models).

SHELL := /bin/bash
CARGO ?= cargo
QUARRY := target/release/quarry
ROOT_MODEL := qwen2.5-coder-1.5b-instruct-q4_k_m
SUB_MODEL := qwen2.5-coder-0.5b-instruct-q4_k_m
DEMO_QUESTION := List each agreement with its termination notice period in days.
export PATH := $(HOME)/.cargo/bin:$(PATH)
export OMP_WAIT_POLICY ?= passive

.PHONY: demo test deps deps-e2e ui ui-test py-test build desktop-links models-demo models-test rust-test e2e fmt-check lint clean portable

demo: deps build models-demo
	@echo "== quarry ask --folder assets/demo \"$(DEMO_QUESTION)\""
	$(QUARRY) ask --folder assets/demo "$(DEMO_QUESTION)"

test: deps-e2e fmt-check lint ui-test py-test build desktop-links models-test rust-test e2e
	@echo "== all tests passed"

deps:
	@bash scripts/install-deps.sh

deps-e2e:
	@bash scripts/install-deps.sh --e2e

# The desktop binary embeds ui/dist at compile time, so the UI is built before cargo runs.
ui:
	@cd ui && { [ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund; } && npm run build

# Types first (tsc, and svelte-check for the components), then the unit tests.
ui-test: ui
	cd ui && npm run check && npm test

# The REPL harness's pure helpers, imported from their files (the worker has them in its binary).
py-test:
	python3 -m pytest -q crates/repl-worker/tests/harness

build: ui
	$(CARGO) build --release --workspace

# The window process links neither llama.cpp nor Python (issue 18.8): the engine and the REPL
# worker are child processes of `quarry`, so a crash in either cannot take the window down and
# its idle memory stays small. Checked in the dependency graph and in the built executable.
desktop-links: build
	@if $(CARGO) tree --offline -p quarry-desktop -e normal --prefix none | grep -E '^(llama-cpp-2|llama-cpp-sys-2|pyo3|pyo3-ffi) '; then \
	  echo "quarry-desktop depends on the crates above; see: cargo tree -p quarry-desktop -i <crate>"; exit 1; fi
	@if ldd target/release/quarry-desktop | grep -E 'libpython|libllama|libggml'; then \
	  echo "target/release/quarry-desktop links the libraries above"; exit 1; fi
	@echo "quarry-desktop links neither llama.cpp nor Python"

models-demo: build
	$(QUARRY) models fetch $(ROOT_MODEL) $(SUB_MODEL)

# Both default models: the document test answers through the default root, as a user's run does.
models-test: build
	$(QUARRY) models fetch $(ROOT_MODEL) $(SUB_MODEL)

rust-test: build
	$(CARGO) test --release --workspace

e2e: build
	bash tests/e2e/run.sh

fmt-check:
	$(CARGO) fmt --all -- --check

# clippy in the release profile reuses the build's build-script outputs (llama.cpp is not
# compiled twice); ruff checks the REPL's Python harness.
lint: ui
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	python3 -m ruff check crates/repl-worker/src crates/repl-worker/tests/harness evals

# A `quarry` for other machines: any x86-64-v2 CPU, with ggml's CPU kernels loaded at run time
# for the CPU it runs on (docs/engine.md). dist/quarry-portable/ holds bin/quarry and
# lib/quarry/ (llama.cpp's shared libraries and the kernel variants, without AMX's).
PORTABLE_TARGET := target/portable
portable:
	RUSTFLAGS="-C target-cpu=x86-64-v2" $(CARGO) build --release -p quarry-cli --features portable --target-dir $(PORTABLE_TARGET)
	bash scripts/package-portable.sh $(PORTABLE_TARGET)/release dist/quarry-portable

clean:
	$(CARGO) clean
	rm -rf ui/dist ui/node_modules tests/e2e/node_modules
