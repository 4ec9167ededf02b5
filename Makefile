# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
STAMP  := $(VENV)/.installed

.PHONY: run test setup lint bench clean-data

# torch is installed first and pinned: the local CPU wheel satisfies 2.13.0; a looser request
# makes pip fetch the newest CUDA build (several GB).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,postgres]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/triagebot db upgrade
	$(BIN)/triagebot samples load --if-empty
	@echo ""
	@echo "triagebot is starting on http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	@echo "  curl http://$(HOST):$(PORT)/readyz"
	@echo "  $(BIN)/triagebot triage \"disk full on /var/lib/postgresql on db-01\""
	@echo ""
	TRIAGEBOT_HOST=$(HOST) TRIAGEBOT_PORT=$(PORT) $(BIN)/triagebot serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean-data:
	rm -rf data
