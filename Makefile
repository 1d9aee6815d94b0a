# Pier: `make demo` and `make test` each install what they need (Debian
# packages, a kube-apiserver/etcd/kubectl built from source and cached).
SHELL := /bin/bash
GO ?= go
GOTESTFLAGS ?= -race -timeout 30m
CONTROLPLANE_DIR = $(shell bash hack/controlplane.sh)

.PHONY: all build deps controlplane demo test lint lab-clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash hack/deps.sh

controlplane:
	@bash hack/controlplane.sh >/dev/null

demo: deps controlplane build
	PIER_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) ./bin/pier-lab demo

lint:
	@unformatted="$$(gofmt -l .)"; if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps controlplane lint
	PIER_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) $(GO) test $(GOTESTFLAGS) ./...

lab-clean:
	$(GO) run ./cmd/pier-lab clean
