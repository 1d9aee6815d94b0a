#!/usr/bin/env bash
# Builds what a lab node needs beside its kubelet, from source through the Go
# module proxy, once, into a cache directory keyed by version, and prints that
# directory: the reference CNI plugins (bridge, host-local, loopback,
# portmap) and crictl for debugging. A second run finds the binaries and does
# nothing. containerd, runc and the registry come from Debian (hack/deps.sh);
# kubelet, kube-controller-manager and kube-scheduler from hack/controlplane.sh.
set -euo pipefail

CNI_VERSION="${PIER_CNI_VERSION:-v1.10.0}"
CRICTL_VERSION="${PIER_CRICTL_VERSION:-v1.37.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pier/bin"
OUT="${CACHE_ROOT}/nodes-cni-${CNI_VERSION}-crictl-${CRICTL_VERSION}"
PLUGINS=(bridge host-local loopback portmap)

log() { echo "nodes: $*" >&2; }

# Concurrent runs (make test beside a developer's shell) wait for each other
# instead of building the same binaries twice.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.nodes.lock"
flock 9

complete() {
	local p
	for p in "${PLUGINS[@]}" crictl; do
		[[ -x "$OUT/$p" ]] || return 1
	done
}

if complete; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off

# go install pkg@version builds in module mode outside any module; binaries
# land in a temporary GOBIN first so a killed build leaves nothing half-written.
install() {
	(cd "$WORK" && GOBIN="$WORK/bin" go install -trimpath -ldflags "-s -w" "$@")
}

log "building CNI plugins ${CNI_VERSION}"
pkgs=()
for p in "${PLUGINS[@]}"; do
	[[ -x "$OUT/$p" ]] || pkgs+=("github.com/containernetworking/plugins/plugins/$(case $p in
		bridge) echo main/bridge ;; loopback) echo main/loopback ;;
		host-local) echo ipam/host-local ;; portmap) echo meta/portmap ;; esac)@${CNI_VERSION}")
done
((${#pkgs[@]} == 0)) || install "${pkgs[@]}"
if [[ ! -x "$OUT/crictl" ]]; then
	log "building crictl ${CRICTL_VERSION}"
	install "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
fi
mv "$WORK"/bin/* "$OUT/" 2>/dev/null || true
complete || { log "missing binaries in $OUT"; exit 1; }
echo "$OUT"
