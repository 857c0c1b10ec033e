# The two commands a newcomer needs: `make run` and `make test`; `make check` is everything (CI).
# The rest are helpers.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEEDS ?= seeds
SEARCH_INDEX_DIR ?= data/index
# The model converted for ONNX Runtime (the default backend); the index build makes it once.
SEARCH_ONNX_DIR ?= data/onnx
export SEARCH_INDEX_DIR SEARCH_ONNX_DIR
# CPU-only torch, from the wheel directory pip is configured with (PIP_FIND_LINKS or pip's
# find-links, as on this machine) or from TORCH_INDEX_URL: set it to PyTorch's CPU wheel index
# elsewhere, or PyPI's multi-GB CUDA build would be pulled.
TORCH_VERSION := 2.13.0
TORCH_INDEX_URL ?=
TORCH_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_TORCH_ARGS = $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),) \
	$(if $(TORCH_FIND_LINKS),--find-links $(TORCH_FIND_LINKS),)

.PHONY: run test check install install-test install-ray install-milvus index bench soak onnx lint typecheck \
	deploy-deps image docs clean

run: install index
	$(BIN)/python -m app

# While you work (about 3 minutes once installed, 4 from a fresh clone): static checks, then the
# unit, API and FAISS-contract tiers and the end-to-end tests that are quick, with the real model
# on the seeds. No root, no servers to install; two pytest workers.
TEST_MARKERS := not (milvus or lite or deploy or long or ray)
test: install-test lint typecheck
	$(BIN)/python -m pytest -m "$(TEST_MARKERS)" -n 2

# Everything, as CI runs it (`.ci/run`): every tier, a real Milvus server, nginx, podman, Chromium,
# schemathesis, the kill -9 loops and the relevance floors. Two workers: one runs every test that
# needs the Milvus server (and the image), the other the rest. Each run leaves its 30 slowest
# steps (durations.txt) and a JUnit report in test-artifacts/.
check: install-test lint typecheck deploy-deps install-milvus
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=30 \
		--junitxml=test-artifacts/junit.xml

index: install
	$(BIN)/python -m indexer build --source $(SEEDS) --out $(SEARCH_INDEX_DIR) --if-stale

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-ray: $(VENV)/.installed-ray

# uv installs everything, torch too (3 s where pip took 27 s; the rest 9 s against pip's 3 min).
# uv does not read pip's configuration: UV_TORCH_ARGS passes on where the CPU wheel is.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python $(UV_TORCH_ARGS) \
		torch==$(TORCH_VERSION)

$(BIN)/uv: $(VENV)/bin/python

UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

# The torch extra: the model converted for ONNX Runtime at the first index build, and
# SEARCH_BACKEND=torch. The eval extra: python -m indexer eval. The milvus extra: SEARCH_STORE=milvus.
$(VENV)/.installed: $(BIN)/uv pyproject.toml
	$(UV_INSTALL) -e '.[torch,eval,milvus]'
	touch $@

# The ray extra: python -m indexer build --engine ray, and harness/ray_cluster.py's clusters
# (about 700 MB). Not for serving; the tests need it (those marked `ray`).
$(VENV)/.installed-ray: $(VENV)/.installed pyproject.toml
	$(UV_INSTALL) -e '.[torch,eval,milvus,ray]'
	touch $@

# The test extras, and the client (clients/python) with its LangChain and LlamaIndex retrievers,
# resolved together; its tests run it against the service.
CLIENT := clients/python
$(VENV)/.installed-test: $(VENV)/.installed-ray pyproject.toml $(CLIENT)/pyproject.toml
	$(UV_INSTALL) -e '.[torch,eval,milvus,ray,test]' -e './$(CLIENT)[langchain,llama-index]'
	touch $@

# A real Milvus standalone server (embedded etcd) for the tests marked `milvus`: its own venv, as
# the service does not depend on it; harness/milvus.py finds it through MILVUS_VENV. The
# stamp also unpacks the server's binaries once (6 s that each test session would pay).
MILVUS_VERSION := 2.3.5
MILVUS_VENV ?= .venv-milvus
export MILVUS_VENV
install-milvus: $(MILVUS_VENV)/.installed-$(MILVUS_VERSION)

$(MILVUS_VENV)/.installed-$(MILVUS_VERSION):
	$(PYTHON) -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/python -m pip install --quiet milvus==$(MILVUS_VERSION)
	$(MILVUS_VENV)/bin/python -c 'import milvus; milvus._initialize_data_files("$(MILVUS_VENV)/server")'
	touch $@

# nginx, Chromium and podman for the deploy tier: system packages, so root only. Elsewhere the
# deploy tests skip (and fail in CI, where CI=true).
deploy-deps:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/deploy-deps.sh; \
	else echo "not root: skipping scripts/deploy-deps.sh (deploy tests skip without its tools)"; fi

image:
	bash scripts/build-image.sh

# Re-export the model for ONNX Runtime (`make index` already exports it when it is missing).
onnx: install
	$(BIN)/python -m indexer export-onnx --out $(SEARCH_ONNX_DIR)

# Latency, throughput, indexing rate and memory on CISI; tables on stdout, JSON in bench/results/.
# The load generator uses httpx, a test extra; the store axis, a real Milvus server.
bench: install-test install-milvus
	$(BIN)/python -m bench

# 10 minutes of mixed searches, batches, writes and deletes at concurrency 32 on loopback: errors,
# p99 and memory growth (docs/operations.md). SOAK_SECONDS=60 for a short one.
SOAK_SECONDS ?= 600
soak: install-test
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)

# ruff; the import contracts (pyproject.toml, drawn in docs/architecture.md); no module importing
# another's underscored names.
LINTED := app indexer bench harness tests scripts $(CLIENT)
lint: install-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/python scripts/check_private_imports.py $(LINTED)
	$(BIN)/python scripts/settings_doc.py --check

# The settings reference in docs/configuration.md, generated from the settings classes.
docs: install
	$(BIN)/python scripts/settings_doc.py

typecheck: install-test
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(MILVUS_VENV) data build *.egg-info
