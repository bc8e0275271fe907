# The two README commands: `make demo` and `make test`. Both create .venv when missing and install
# torch first from a pinned spec (override: make test TORCH_SPEC="torch==2.5.1"), then the project.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
REPORT_ARGS ?=
# the equivariance configuration (docs/equivariance.md, session 10): rotation-matrix actions and
# the relative-target term at weight 10, measured with the earlier recipe (experiments.pipeline.RECIPES)
EQUIVARIANCE_ARGS ?= --pipeline.recipe earlier --pipeline.relative-weight 10 --pipeline.action-encoding matrix
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench report report-equivariance explore explore-data soak lint format clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/seqjepa-gym demo

test: $(STAMP)
	# one thread per test worker: two workers x two torch threads on two cores thrash (measured 4x slower)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/seqjepa-gym bench

report: $(STAMP)
	$(BIN)/seqjepa-gym report $(REPORT_ARGS)

report-equivariance: $(STAMP)
	$(BIN)/seqjepa-gym report $(EQUIVARIANCE_ARGS) $(REPORT_ARGS)

explore: $(STAMP)
	$(BIN)/seqjepa-gym explore

explore-data: $(STAMP)
	$(BIN)/seqjepa-gym explore-data

soak: $(STAMP)
	$(BIN)/seqjepa-gym soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache
