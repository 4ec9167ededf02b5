# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run HOST=0.0.0.0 PORT=9000` overrides the address; without them TRIAGEBOT_HOST and
# TRIAGEBOT_PORT (environment or .env) decide, as for `triagebot serve`. Only the make command
# line counts: a HOST or PORT variable some environments export is not ours.
cli = $(if $(filter command line,$(origin $(1))),$($(1)))
SERVE_FLAGS := $(if $(call cli,HOST),--host $(HOST)) $(if $(call cli,PORT),--port $(PORT))
SHOWN := http://$(or $(call cli,HOST),$(TRIAGEBOT_HOST),127.0.0.1):$(or $(call cli,PORT),$(TRIAGEBOT_PORT),8080)

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
	@echo "triagebot is starting on $(SHOWN)  (Ctrl-C to stop)"
	@echo "  curl $(SHOWN)/readyz"
	@echo "  $(BIN)/triagebot triage \"disk full on /var/lib/postgresql on db-01\""
	@echo ""
	$(BIN)/triagebot serve $(SERVE_FLAGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean-data:
	rm -rf data
