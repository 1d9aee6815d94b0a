# Pier: `make demo` and `make test` each install what they need (Debian
# packages, a kube-apiserver/etcd/kubectl built from source and cached).
SHELL := /bin/bash
GO ?= go
GOTESTFLAGS ?= -race -count=1 -timeout 30m
CONTROLPLANE_DIR = $(shell bash hack/controlplane.sh)
TOOLS_DIR = $(shell bash hack/tools.sh)
NODES_DIR = $(shell bash hack/nodes.sh)
IMAGE ?= ghcr.io/pier-lb/pier:v0.1.0

CONTROLLER_GEN = $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

.PHONY: all build deps controlplane tools nodes image demo demo-pods unit test lint generate verify-generated lab-clean fuzz

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash hack/deps.sh

controlplane:
	@bash hack/controlplane.sh >/dev/null

# helm for the install tests (kustomize is kubectl's).
tools:
	@bash hack/tools.sh >/dev/null

# CNI plugins and crictl for the pods lab's nodes.
nodes:
	@bash hack/nodes.sh >/dev/null

# The image as a tarball (docker load, kind load image-archive), no Docker engine needed.
image:
	$(GO) run ./hack/image --tag $(IMAGE) --out bin/pier-image.tar

demo: deps controlplane build
	PIER_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) ./bin/pier-lab demo

# The same site as a cluster of kubelets, Pier installed by its chart.
demo-pods: deps controlplane tools nodes build
	PIER_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) PIER_TOOLS_DIR=$(TOOLS_DIR) PIER_NODES_DIR=$(NODES_DIR) ./bin/pier-lab demo -mode pods

# deepcopy and CRD YAML are generated from api/ (edit the Go types, then run this).
generate:
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=./manifests/crd
	bash hack/sync-crds.sh

# Fails when the committed generated files differ from what api/ generates.
verify-generated:
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(CONTROLLER_GEN) object paths=./api/... output:object:dir="$$tmp/object" && \
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir="$$tmp/crd" && \
	diff -u api/v1alpha1/zz_generated.deepcopy.go "$$tmp/object/zz_generated.deepcopy.go" && \
	diff -ru manifests/crd "$$tmp/crd" || { echo "generated files are stale: run make generate"; exit 1; }

lint: verify-generated
	@unformatted="$$(gofmt -l .)"; if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The fast loop while changing code: every test that needs neither root nor
# a control plane (lab tests skip, saying so). Go's test cache reruns only
# the packages a change reaches; UNITFLAGS=-count=1 reruns all of them.
# make test runs everything.
unit:
	env -u CI PIER_UNIT=1 $(GO) test -race $(UNITFLAGS) ./...

# The packages that run labs, control planes or protocols on real timers,
# the slowest first: hack/test.sh runs them two at a time at normal
# priority, and lint, every other package and the fuzz targets beside them
# at a lower one, on the CPU the labs leave idle. The pods lab goes beside
# the controller and L2 tests rather than the relay lab's floods (its
# upgrade step counts memberlist flaps).
LAB_PACKAGES = ./e2e/podlab ./controller ./e2e/l2mode ./e2e/relaymode \
	./e2e/install ./e2e/bgpmode ./hack/image \
	./speaker/bgp ./speaker/members ./speaker/bfd ./speaker/l2

test: deps controlplane tools nodes
	PIER_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) PIER_TOOLS_DIR=$(TOOLS_DIR) PIER_NODES_DIR=$(NODES_DIR) \
		GO=$(GO) GOTESTFLAGS="$(GOTESTFLAGS)" MAKE=$(MAKE) bash hack/test.sh $(LAB_PACKAGES)

# Each fuzz target for FUZZTIME (make test runs them briefly; longer on
# demand: make fuzz FUZZTIME=5m). go test runs the seeds and testdata/fuzz
# crashers on every run.
FUZZTIME ?= 5s
FUZZ_TARGETS = \
	./allocator:FuzzAllocator ./config:FuzzParse ./config:FuzzParseRelay \
	./speaker/l2:FuzzAnswerARP ./speaker/l2:FuzzAnswerNS ./speaker/bfd:FuzzParsePacket \
	./relay:FuzzTokenExtract ./relay:FuzzParseToken ./relay:FuzzProxyHeader \
	./controller/webhook:FuzzAdmissionBody ./controller/webhook:FuzzAdmissionObject \
	./speaker:FuzzLoadState ./speaker:FuzzIncremental ./speaker/vip:FuzzReadState ./relay/agent:FuzzLoadState
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash hack/fuzz.sh $(FUZZ_TARGETS)

lab-clean:
	$(GO) run ./cmd/pier-lab clean
