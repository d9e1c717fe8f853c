# sipscope: the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-unit test-stack stack-up stack-down bench clean

setup: $(STAMP)
	@./infra/setup-system.sh

$(STAMP): pyproject.toml producers/sipcore/Cargo.toml producers/sipcore/src/lib.rs
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@if command -v cargo >/dev/null; then echo 'setup: building the native SIP parser core (producers/sipcore)'; \
		$(BIN)/pip install -q ./producers/sipcore; \
	else echo 'setup: no cargo (Rust): the native SIP parser core is not built; the Python parser is used (about 3x slower)'; fi
	@touch $(STAMP)

stack-up: setup
	$(BIN)/sipscope stack up
	$(BIN)/sipscope stack status

stack-down:
	$(BIN)/sipscope stack down

# the main job: start the stack, then run what the pipeline has so far (grows with each stage)
demo: stack-up
	$(BIN)/python -m sipscope.demo

# the whole suite; tests/conftest.py starts the real stack (or reuses a running one)
test: setup
	$(BIN)/python -m pytest -q

test-unit: setup
	$(BIN)/python -m pytest -q -m "not stack and not peers"

test-stack: setup
	$(BIN)/python -m pytest -q -m stack

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
