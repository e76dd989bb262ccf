# agentfleet — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTER_DIR ?= _output/cluster
export AGENTFLEET_CLUSTER_DIR := $(CLUSTER_DIR)

.DEFAULT_GOAL := help
.PHONY: help venv lock tools lint manifests chart-lint image istio keda unit test integration e2e crds golden cluster-up cluster-down \
        cluster-status demo demo-down run bench bench-10k bench-mesh-10k fuzz soak faults clean protos

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

# Exactly the versions that were tested (requirements/dev.txt, with hashes), then the two
# local packages: the operator and the dev-only tools (never in the wheel or the image).
$(VENV)/.installed: requirements/dev.txt pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -e . -e ./dev
	touch $@

venv: $(VENV)/.installed ## Create the Python virtualenv with the locked dev dependencies

lock: ## Re-resolve requirements/*.txt (hashed lock files) from the pyproject ranges
	$(PYTHON) -m venv _output/uv && _output/uv/bin/pip install -q uv
	cd requirements && ../_output/uv/bin/uv pip compile ../pyproject.toml --python-version 3.11 \
	  --generate-hashes --no-header -q -o operator.txt
	cd requirements && ../_output/uv/bin/uv pip compile ../pyproject.toml ../dev/pyproject.toml \
	  --extra dev --python-version 3.11 --generate-hashes --no-header -q -o dev.txt

tools: venv ## Build (once, cached) etcd, Kubernetes, kwok, helm, KEDA, istioctl and the upstream CRDs
	$(BIN)/agentfleet dev cluster build

lint: venv ## ruff, mypy and the import contract (the layers, see pyproject.toml)
	$(BIN)/ruff check operator dev tests image benchmarks soak
	$(BIN)/mypy
	cd operator && ../$(BIN)/lint-imports ../pyproject.toml

unit: venv ## Unit tests only (no cluster)
	$(BIN)/pytest -q tests/unit

# pytest exits 5 when it collects nothing; that alone is not a failure.
# The bench smoke counts every client's writes of the operator's kinds on the API server, so it
# runs last on a control plane of its own, where no other test's fixtures write meanwhile.
BENCH_SMOKE := tests/integration/test_bench_smoke.py
test: lint tools ## Everything CI runs: lint, unit, integration and e2e on a real local control plane
	$(BIN)/pytest tests -ra --ignore=$(BENCH_SMOKE); rc=$$?; [ $$rc -eq 5 ] && rc=0; \
	$(BIN)/pytest $(BENCH_SMOKE) -ra; rc2=$$?; [ $$rc2 -eq 5 ] && rc2=0; \
	exit $$(( rc || rc2 ))

integration: tools ## Integration tests (starts a local cluster unless $$KUBECONFIG is set)
	$(BIN)/pytest -ra tests/integration

e2e: tools ## End-to-end tests: the example fleet on a real cluster
	$(BIN)/pytest -ra tests/e2e

crds: venv ## Regenerate crds/ from models.py, then everything derived from them (make manifests)
	$(BIN)/agentfleet crd -o crds/aiagents.agentfleet.io.yaml
	$(MAKE) manifests

manifests: venv ## Render the chart's RBAC rules (from the table of child kinds), manifests/operator, the chart's CRD copy and argocd/argocd-cm.yaml
	$(BIN)/python -m agentfleet.render.rbac > charts/agentfleet/files/rbac.yaml
	BIN=$(BIN) hack/chart.sh manifests

protos: venv ## Regenerate the gRPC code (operator/agentfleet/frontends/grpc/gen/) from proto/ with the pinned grpcio-tools
	$(BIN)/python -m agentfleet_dev.protos

keda: venv ## Regenerate keda/ (the example agents' ScaledObjects) from the renderers
	$(BIN)/pytest -q tests/unit/render/test_keda.py -k keda_folder --update-golden

istio: venv ## Regenerate istio/ (the example fleet's mesh objects, both modes) from the renderers
	$(BIN)/python istio/generate.py

chart-lint: venv ## helm lint --strict the chart (default and all-options values)
	BIN=$(BIN) hack/chart.sh lint

image: venv ## The operator image as an OCI archive, without Docker: _output/agentfleet-operator-<version>.oci.tar
	$(BIN)/python -m image.build

golden: venv ## Regenerate the renderer golden files (review the diff!)
	$(BIN)/pytest -q tests/unit/render --update-golden

cluster-up: tools ## Start the local control plane with simulated CPU and GPU nodes (KEDA=1 adds KEDA)
	$(BIN)/agentfleet dev cluster up --dir $(CLUSTER_DIR) $(if $(KEDA),--keda)

cluster-down: venv ## Stop the local control plane and delete its data
	$(BIN)/agentfleet dev cluster down --dir $(CLUSTER_DIR)

cluster-status: venv ## Show the local control plane's processes
	$(BIN)/agentfleet dev cluster status --dir $(CLUSTER_DIR)

demo: tools ## Local cluster + CRD + operator + the seven example agents, then `kubectl get aia`
	BIN=$(BIN) CLUSTER_DIR=$(CLUSTER_DIR) hack/demo.sh up

demo-down: venv ## Stop the demo's operator and cluster
	BIN=$(BIN) CLUSTER_DIR=$(CLUSTER_DIR) hack/demo.sh down

run: venv ## Run the operator locally against $$KUBECONFIG
	$(BIN)/agentfleet run

bench: tools ## Benchmarks: 1,000 agents, median of 3 runs on fresh local clusters against the fastest plain baseline; fails on a missed target (~1 h on 2 cores)
	$(BIN)/python -m benchmarks --agents 1000 --repeat 3 --strict

bench-10k: tools ## 10,000 agents: converge, RSS, CPU per agent, restart (about 1 h on 2 cores)
	$(BIN)/python -m benchmarks --agents 10000 --scenarios create,idle,restart --fleets none --strict

bench-mesh-10k: tools ## Mesh agents in one namespace, 100 then 10,000: shared objects and writes per agent stay flat
	$(BIN)/python -m benchmarks --no-main --fleets none --mesh-growth 100,10000 --strict

# The short profile (30 specs) runs in make test; this one draws many more.
FUZZ_EXAMPLES ?= 400
fuzz: tools ## Random and hostile AIAgents from the CRD's schema against a real apiserver and operator (long profile, ~1 h)
	AGENTFLEET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -ra tests/fuzz

SOAK_MINUTES ?= 60
soak: tools ## An hour of churn (agents, GPUs, failing nodes): RSS slope, CPU and writes per change, latencies (SOAK_MINUTES=5 to smoke it)
	$(BIN)/python -m soak --minutes $(SOAK_MINUTES)
faults: tools ## The full fault suite (~20 min): API server and etcd outages of 30-60 s, 10 silent minutes, 20 SIGKILLs among 200 agents
	AGENTFLEET_FAULTS=full $(BIN)/pytest -ra -s tests/integration/test_faults.py

clean: cluster-down ## Remove build outputs (not the binary cache in ~/.cache/agentfleet)
	rm -rf _output .pytest_cache .mypy_cache .ruff_cache
