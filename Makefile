# neatpipe: every target that needs the virtual environment creates it when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.neatpipe-installed
EXPERIMENT ?= experiments/default.yaml
LOOP ?= experiments/feedback-training.yaml
MODEL_SET ?=
PYTEST_ARGS ?=

.PHONY: install test test-all lint format bench evolve resume feedback-loop clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	sh scripts/install-torch.sh $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q --run-slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check neatpipe tests
	$(BIN)/ruff format --check neatpipe tests

format: $(STAMP)
	$(BIN)/ruff check --fix neatpipe tests
	$(BIN)/ruff format neatpipe tests

bench: $(STAMP)
	$(BIN)/neatpipe bench sandbox

evolve: $(STAMP)
	$(BIN)/neatpipe evolve $(EXPERIMENT)

resume: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make resume RUN=runs/<name>-<time>"; exit 2; }
	$(BIN)/neatpipe evolve --resume $(RUN)

feedback-loop: $(STAMP)
	$(BIN)/neatpipe loop $(LOOP) $(if $(MODEL_SET),--model-set $(MODEL_SET)) --out runs/feedback-loop-$$(date +%Y%m%d-%H%M%S)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
