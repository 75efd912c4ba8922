# Eventline: `make run` serves the API, `make test` runs the whole suite.
# Both start their own PostgreSQL and Apache Kafka on loopback (scripts/infra.py).

PYTHON ?= python3

# This checkout's ports. Another checkout on the same machine picks others, e.g.
#   make test KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 PG_PORT=25432 API_PORT=8100
KAFKA_PORT ?= 19092
KAFKA_CONTROLLER_PORT ?= 19093
PG_PORT ?= 15432
API_PORT ?= 8000
export EVENTLINE_KAFKA_PORT := $(KAFKA_PORT)
export EVENTLINE_KAFKA_CONTROLLER_PORT := $(KAFKA_CONTROLLER_PORT)
export EVENTLINE_PG_PORT := $(PG_PORT)
export EVENTLINE_API_PORT := $(API_PORT)
export EVENTLINE_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(KAFKA_PORT)
export EVENTLINE_DATABASE_URL ?= postgresql+asyncpg://eventline:eventline@127.0.0.1:$(PG_PORT)/eventline
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help setup infra migrate topics run test check lint down clean bench

help:
	@echo "make run    start Kafka + PostgreSQL and serve the API on http://127.0.0.1:8000/docs"
	@echo "make test   start Kafka + PostgreSQL and run the whole test suite"
	@echo "make check  lint, strict types and the unit tests: seconds, no Kafka, no PostgreSQL"
	@echo "make down   stop the local Kafka and PostgreSQL"
	@echo "make clean  stop them and delete .local/ and .venv/"

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating virtualenv in $(VENV) and installing (pinned by constraints.txt)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

infra:
	@echo "==> starting local PostgreSQL and Kafka"
	@$(PYTHON) scripts/infra.py up

migrate: setup infra
	@echo "==> applying database migrations"
	@$(BIN)/alembic upgrade head

topics: setup infra
	@echo "==> creating Kafka topics"
	@$(BIN)/eventline topics create

run: setup infra migrate topics
	@echo "==> serving Eventline on http://127.0.0.1:$(API_PORT) (docs: /docs); Ctrl-C to stop"
	@EVENTLINE_API_KEYS="$${EVENTLINE_API_KEYS:-$$($(PYTHON) scripts/dev_key.py)}" \
	EVENTLINE_TOKEN_ISSUER="$${EVENTLINE_TOKEN_ISSUER:-eventline-dev}" \
	EVENTLINE_TOKEN_JWKS_FILE="$${EVENTLINE_TOKEN_JWKS_FILE:-$$($(BIN)/python scripts/dev_tokens.py jwks)}" \
	EVENTLINE_PRIVACY_KEKS="$${EVENTLINE_PRIVACY_KEKS:-$$($(PYTHON) scripts/dev_kek.py)}" \
	$(BIN)/eventline run

lint: setup
	@echo "==> ruff (lint and format) and strict mypy"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy --strict app projections tests

# The inner loop: what a contributor runs after every change. `make test` stays the CI gate.
check: lint
	@echo "==> unit tests (no Kafka, no PostgreSQL)"
	@$(BIN)/python -m pytest -q tests/unit

test: setup infra lint
	@echo "==> running the test suite against the local Kafka and PostgreSQL"
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

down:
	@$(PYTHON) scripts/infra.py down

clean: down
	rm -rf .local $(VENV)

bench: setup infra
	@command -v wrk >/dev/null || { echo "==> installing wrk (Debian package) for the load"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q wrk >/dev/null; }
	@test -x $(BIN)/py-spy || { echo "==> installing py-spy (the profile of the API under load)"; \
		$(BIN)/python -m pip install --quiet -c constraints.txt py-spy; }
	@test -x $(BIN)/granian || { echo "==> installing granian (python -m bench.server: the HTTP server A/B)"; \
		$(BIN)/python -m pip install --quiet -c constraints.txt granian; }
	@echo "==> running the benchmarks (see BENCHMARKS.md)"
	@$(BIN)/python -m bench
