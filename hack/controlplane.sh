#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, kube-proxy, the pods lab's kubelet,
# kube-controller-manager and kube-scheduler, and etcd from source through the Go module proxy, once,
# into a cache directory keyed by version, and prints that directory.
# A second run finds the binaries and does nothing; a cache missing one of them
# builds only that one.
set -euo pipefail

KUBE_VERSION="${PIER_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${PIER_ETCD_VERSION:-v3.6.8}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pier/bin"
OUT="${CACHE_ROOT}/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

log() { echo "controlplane: $*" >&2; }

# Concurrent runs (make test beside a developer's shell) wait for each other
# instead of building the same binaries twice.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.controlplane.lock"
flock 9

KUBE_CMDS=(kube-apiserver kubectl kube-proxy kubelet kube-controller-manager kube-scheduler)

have_kube() {
	local cmd
	for cmd in "${KUBE_CMDS[@]}"; do
		[[ -x "$OUT/$cmd" ]] || return 1
	done
}

if have_kube && [[ -x "$OUT/etcd" ]]; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off

staging_version() { echo "v0${KUBE_VERSION#v1}"; } # v1.37.2 -> v0.37.2

build_kube() {
	local dir="$WORK/kube" gomod
	mkdir -p "$dir"
	cd "$dir"
	go mod init pier.local/controlplane/kube >/dev/null 2>&1
	gomod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
	# k8s.io/kubernetes points each staging module at ./staging/src/k8s.io/X;
	# outside its own tree those must come from the proxy at the matching tag.
	local sv; sv="$(staging_version)"
	{
		echo "require k8s.io/kubernetes ${KUBE_VERSION}"
		grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" |
			awk -v v="$sv" '{print "replace " $1 " => " $1 " " v}'
	} >>go.mod
	cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
	go mod tidy >/dev/null 2>&1 || go mod tidy
	local pkg=k8s.io/component-base/version
	local minor; minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
	local ldflags="-s -w -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	for cmd in "${KUBE_CMDS[@]}"; do
		[[ -x "$OUT/$cmd" ]] && continue
		log "building $cmd ${KUBE_VERSION} (minutes on a cold cache)"
		go build -trimpath -ldflags "$ldflags" -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
		mv "$OUT/$cmd.tmp" "$OUT/$cmd"
	done
}

build_etcd() {
	local dir="$WORK/etcd"
	mkdir -p "$dir"
	cd "$dir"
	go mod init pier.local/controlplane/etcd >/dev/null 2>&1
	{
		echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
		# The server module replaces these with ../ paths inside its own repo.
		for m in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
			echo "replace $m => $m ${ETCD_VERSION}"
		done
	} >>go.mod
	cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
	go mod tidy >/dev/null 2>&1 || go mod tidy
	log "building etcd ${ETCD_VERSION}"
	go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
	mv "$OUT/etcd.tmp" "$OUT/etcd"
}

[[ -x "$OUT/etcd" ]] || build_etcd
have_kube || build_kube
echo "$OUT"
