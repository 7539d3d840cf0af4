# Quick start: `make demo` runs the main job against the embedded lab; `make test` runs the suite.
# Both build .venv from scratch when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test plan clean bench shell-help

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m pip install --quiet -e '.[test,scale]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import prefect, paramiko, pandas, yaml, pytest, hypothesis, tasks, flows, lab"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/amt-migrate demo
	@$(MAKE) --no-print-directory shell-help

# the command lives in .venv: say how to type the README's commands
shell-help:
	@echo "amt-migrate is in $(BIN): run '$(BIN)/amt-migrate --help', or 'source $(BIN)/activate' once per shell, then 'amt-migrate --help'"

plan: $(STAMP)
	$(BIN)/amt-migrate plan inventories/example.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Benchmarks (bench/results/README.md): `make bench BENCH_ARGS=--full` for the 10,000-host wave and 100,000-host state
bench: $(STAMP)
	$(BIN)/python -c "import ansible, psutil" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[test,bench]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m bench.run $(or $(BENCH_ARGS),--quick)

clean:
	rm -rf $(VENV) .pytest_cache
