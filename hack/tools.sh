#!/usr/bin/env bash
# Builds the install tools Pier's tests use (helm) from source through the Go
# module proxy, once, into a cache directory keyed by version, and prints that
# directory. A second run finds the binaries and does nothing. kustomize is
# not built: `kubectl kustomize` (hack/controlplane.sh) embeds it.
set -euo pipefail

HELM_VERSION="${PIER_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pier/bin"
OUT="${CACHE_ROOT}/tools-helm-${HELM_VERSION}"

log() { echo "tools: $*" >&2; }

# Concurrent runs (make test beside a developer's shell) wait for each other
# instead of building the same binaries twice.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.tools.lock"
flock 9

if [[ -x "$OUT/helm" ]]; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off

log "building helm ${HELM_VERSION} (a few minutes on a cold cache)"
# go install pkg@version builds in module mode outside any module; GOBIN
# receives the binary. Install into a temporary directory first so that a
# killed build never leaves a half-written helm that a later run trusts.
(cd "$WORK" && GOBIN="$WORK/bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
mv "$WORK/bin/helm" "$OUT/helm"
echo "$OUT"
