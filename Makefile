# The two commands: `make demo` runs the whole pipeline, `make test` runs every test.
# Both create the environment on first use (uv, pinned by uv.lock); downloads are cached
# outside the checkout (~/.cache) so later runs are quick.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
CACHE_DIR ?= $(HOME)/.cache/lakehouse
UV := $(CACHE_DIR)/uv-$(UV_VERSION)/bin/uv
export UV_CACHE_DIR ?= $(HOME)/.cache/uv
export UV_PYTHON ?= $(shell command -v $(PYTHON))
VENV := .venv
STAMP := $(VENV)/.synced

.PHONY: demo test test-fast lint format docs clean bench bench-cdc bench-apply bench-engines bench-forecast bench-search bench-propositions bench-api bench-microbatch bench-readme soak

demo: $(STAMP)  ## the shop live in PostgreSQL + Debezium (or recorded files) -> ingest -> dbt build -> status -> dashboards (Superset)
	$(VENV)/bin/lakehouse demo

test: $(STAMP)  ## every test: unit, integration and the end-to-end demo reconciliation
	$(VENV)/bin/pytest -n 2 --dist loadgroup --durations=30

test-fast: $(STAMP)  ## the edit loop: everything but the end-to-end run
	$(VENV)/bin/pytest -n 2 -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/ruff check lakehouse flows tests bench ml
	$(VENV)/bin/ruff format --check lakehouse flows tests bench ml
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format lakehouse flows tests bench ml
	$(VENV)/bin/ruff check --fix lakehouse flows tests bench ml

bench: $(STAMP)  ## ingest throughput against the naive merge and the parse-and-write ceiling
	$(VENV)/bin/python -m bench.ingest
	$(VENV)/bin/python -m bench.readme

bench-cdc: $(STAMP)  ## live CDC latency and throughput (PostgreSQL + Debezium + lander), ~8 min
	$(VENV)/bin/python -m bench.cdc
	$(VENV)/bin/python -m bench.readme

bench-apply: $(STAMP)  ## silver apply throughput, delta-rs vs Spark, on a silver table of 10,000,000 rows
	$(VENV)/bin/python -m bench.apply
	$(VENV)/bin/python -m bench.readme

bench-microbatch: $(STAMP)  ## micro-batches into a silver table of 10,000,000 rows: the merge-on-read tail vs the whole-file merge, 1,000 changes/s, ~45 min
	$(VENV)/bin/python -m bench.microbatch
	$(VENV)/bin/python -m bench.readme

bench-engines: $(STAMP)  ## dashboard queries over the marts: DuckDB vs Trino vs Spark SQL, 1x and 10x scale
	$(VENV)/bin/python -m bench.engines
	$(VENV)/bin/python -m bench.readme

bench-forecast: $(STAMP)  ## demand forecast WAPE vs both baselines and the generator's oracle, coverage, train+score time (default shop, ~1 min to generate once)
	$(VENV)/bin/python -m bench.forecast
	$(VENV)/bin/python -m bench.readme

bench-propositions: $(STAMP)  ## propositions MAP@10/nDCG@10/recall@10 vs every baseline and the generator's oracle, training time (the default shop of bench-forecast)
	$(VENV)/bin/python -m bench.propositions
	$(VENV)/bin/python -m bench.readme

VEGETA := $(HOME)/.cache/lakehouse/bin/vegeta
$(VEGETA):  # the load generator of bench-api, built once outside the checkout
	GOBIN=$(dir $(VEGETA)) go install github.com/tsenart/vegeta/v12@v12.13.0

bench-api: $(STAMP) $(VEGETA)  ## the API under load (vegeta): 200 requests/s mixed over search, propositions and forecasts, p95 and errors (the served shop, ~3 min to build once)
	$(VENV)/bin/python -m bench.api
	$(VENV)/bin/python -m bench.readme

bench-readme: $(STAMP)  ## regenerate bench/README.md from the records in bench/results/
	$(VENV)/bin/python -m bench.readme

bench-search: $(STAMP)  ## product search nDCG@10/recall@10 (BM25, vectors, hybrid) on the labelled queries, latency, embedding speed, refresh cost at 10x (~2 min)
	$(VENV)/bin/python -m bench.search
	$(VENV)/bin/python -m bench.readme

soak: $(STAMP)  ## the live shop for an hour with restarts, builds and maintenance (make test runs the same soak for 2 minutes)
	LAKEHOUSE_SOAK_SECONDS=$${LAKEHOUSE_SOAK_SECONDS:-3600} $(VENV)/bin/pytest -p no:cacheprovider -s tests/e2e/test_soak.py

docs: $(STAMP)  ## dbt docs as a static site under the data directory
	$(VENV)/bin/lakehouse dbt docs generate

clean:
	rm -rf .lakehouse dbt_project/target dbt_project/logs

$(UV):
	$(PYTHON) -m venv $(CACHE_DIR)/uv-$(UV_VERSION)
	$(CACHE_DIR)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@
