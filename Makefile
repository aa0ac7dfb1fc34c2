# Two commands do all set-up on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV ?= .venv
# torch first and pinned: the CPU wheel; an unpinned torch would pull several GB of CUDA builds.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: install demo test test-without-extras test-slow bench corpora clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/domainfm demo

test: install
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc

# The default tier as CI runs it: before the spark/ray extras are installed (they are blocked here,
# so a machine that has them still sees a test that forgets to skip without them).
test-without-extras: install
	PYTHONPATH=tests $(BIN)/python -m pytest -p block_extras $(PYTEST_ARGS)

# End-to-end runs and the real datasets in ../shared/data (skipped when absent); CI runs both tiers.
test-slow: install
	$(BIN)/python -m pytest -m "slow or shared_data" $(PYTEST_ARGS)

bench: install
	@for script in tests/benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

corpora: install
	$(BIN)/domainfm synth -o corpora

clean:
	rm -rf demo-output runs/demo-clinical runs/demo-legal .pytest_cache
