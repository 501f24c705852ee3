# Two commands matter: `make demo` runs the ELT on this machine, `make test` runs the tests.
# Both install what they need first: a private uv (in .tools/) and the locked venv (.venv/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PORT ?= 4200
IMAGE ?= prefect-elt:local
ENVIRONMENT ?= local

export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/.prefect
LOCAL_API := PREFECT_API_URL=http://127.0.0.1:$(PORT)/api PREFECT_UI_URL=http://127.0.0.1:$(PORT)

.PHONY: help install browser test test-fast lint demo setup server stop bench deploy-local worker prefect.yaml image

help: ## List the targets
	@grep -E '^[a-z.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# process would otherwise compile Prefect, dbt and their integrations again (~10 s each).
install: $(UV) ## Create .venv from uv.lock (idempotent)
	$(UV) sync --frozen --quiet --compile-bytecode

browser: ## Install Debian's Chromium for the UI tests when missing
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium is missing and apt needs root: UI tests will be skipped (sudo apt-get install chromium)"; fi; }

test: install browser ## Run the test suite (installs first)
	$(UV) run pytest

test-fast: install ## Run the tests that need no Prefect server and take no seconds each (about 30 s)
	$(UV) run pytest -m "not server and not slow"

image: ## Build the image (IMAGE, default prefect-elt:local) with buildah as root, no Docker engine
	@command -v buildah >/dev/null && command -v mmdebstrap >/dev/null || { \
	  echo "make image needs buildah and mmdebstrap: apt-get install -y buildah mmdebstrap (as root)"; exit 1; }
	deployments/image/stand_in_base.sh
	buildah --storage-driver vfs bud --isolation chroot --layers --pull-never -t $(IMAGE) .
	@buildah --storage-driver vfs images --format '{{.Name}}:{{.Tag}} {{.Size}}' $(IMAGE)

prefect.yaml: install ## Render prefect.yaml from deployments/environments/ and deployments/jobs.yaml
	$(UV) run python -m deployments.prefect_yaml

lint: install ## ruff, formatting, mypy, hadolint and the workflow schema
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run hadolint Dockerfile
	$(UV) run check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

server: install ## Start a local Prefect server with its UI on PORT (default 4200), if not running
	@PORT=$(PORT) UV=$(UV) deployments/local_server.sh start

stop: ## Stop the local Prefect server started by `make server`
	@PORT=$(PORT) deployments/local_server.sh stop

setup: server ## Register the block types; create/update ENVIRONMENT's documents as declared
	$(LOCAL_API) $(UV) run python -m deployments.setup --environment $(ENVIRONMENT)

deploy-local: server ## Create the local process pool and prefect.yaml's `local-*` deployments
	$(LOCAL_API) $(UV) run python -m deployments.setup --environment local --deploy

worker: server ## Run a process worker for the `elt-local` pool (Ctrl-C stops it)
	$(LOCAL_API) $(UV) run prefect worker start --pool elt-local --type process

demo: setup ## Run the main ELT job locally (DuckDB, dbt Core, console alerts)
	$(LOCAL_API) $(UV) run python -m demo

bench: server ## Run the benchmarks (bench/run.py) against the local Prefect server
	$(UV) sync --frozen --quiet --compile-bytecode --group bench
	$(LOCAL_API) $(UV) run --group bench python bench/run.py
