#!/usr/bin/env bash
# Pier's kind lab, for machines with Docker: a kind cluster on its own Docker
# network (198.51.100.0/24, the netns lab's L2 segment), an FRR container as
# the BGP router at 198.51.100.1, a client container routing the BGP pool
# through it, Pier installed from the image tarball with the l2-bgp overlay,
# and the scenarios the pods lab runs too (e2e/scenario, driven by
# TestKindScenarios in e2e/kind):
#   1. a Service gets an address from the L2 pool (198.51.100.200-250);
#      exactly one MAC answers ARP for it, the MAC of the node its
#      ServiceL2Status names, and HTTP through it reaches a backend;
#   2. a Service from the BGP pool (203.0.113.0/24) is learned by FRR from
#      every node that may carry load-balancer traffic (the control plane
#      is excluded) and reached from the client through the router.
#
# Usage: e2e/kind/lab.sh [up|test|down]   (default: up, test, then down;
#        KEEP=1 leaves everything running)
# Needs: docker, kind, kubectl, go, and the image tarball (make image).
# Images pulled from the internet unless overridden (private registries):
#   KIND_NODE_IMAGE, FRR_IMAGE, CLIENT_IMAGE, ECHO_IMAGE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-pier-lab}"
NETWORK="${NETWORK:-pier-kind}"
IMAGE_TAR="${IMAGE_TAR:-$ROOT/bin/pier-image.tar}"
FRR_IMAGE="${FRR_IMAGE:-quay.io/frrouting/frr:9.1.0}"
CLIENT_IMAGE="${CLIENT_IMAGE:-nicolaka/netshoot:v0.13}"
ECHO_IMAGE="${ECHO_IMAGE:-registry.k8s.io/e2e-test-images/agnhost:2.53}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
FRR="${CLUSTER}-frr"
CLIENT="${CLUSTER}-client"
BGP_POOL=203.0.113.0/24
ROUTER_IP=198.51.100.1
ROUTER_ASN=64512
NODE_ASN=64513
WORK="$(mktemp -d)"
KUBECONFIG="$WORK/kubeconfig"
export KUBECONFIG

log() { printf 'kind-lab: %s\n' "$*" >&2; }
fail() {
	log "FAIL: $*"
	exit 1
}

up() {
	[[ -f "$IMAGE_TAR" ]] || fail "no image tarball at $IMAGE_TAR (run make image)"
	log "docker network $NETWORK (198.51.100.0/24)"
	docker network inspect "$NETWORK" >/dev/null 2>&1 ||
		docker network create --driver bridge --subnet 198.51.100.0/24 --ip-range 198.51.100.0/25 \
			--gateway 198.51.100.254 "$NETWORK" >/dev/null
	start_frr
	start_client
	log "kind cluster $CLUSTER"
	cat >"$WORK/kind.yaml" <<-YAML
		kind: Cluster
		apiVersion: kind.x-k8s.io/v1alpha4
		nodes:
		- role: control-plane
		- role: worker
		- role: worker
	YAML
	local args=(create cluster --name "$CLUSTER" --config "$WORK/kind.yaml" --kubeconfig "$KUBECONFIG" --wait 5m)
	[[ -n "$KIND_NODE_IMAGE" ]] && args+=(--image "$KIND_NODE_IMAGE")
	KIND_EXPERIMENTAL_DOCKER_NETWORK="$NETWORK" kind "${args[@]}"
	kind load image-archive "$IMAGE_TAR" --name "$CLUSTER"
	install_pier
}

start_frr() {
	docker inspect "$FRR" >/dev/null 2>&1 && return
	log "FRR $FRR_IMAGE at $ROUTER_IP, AS $ROUTER_ASN"
	# Kept with the cluster (not in $WORK): the container reads it on restarts.
	local conf="$ROOT/bin/kind-lab/frr"
	mkdir -p "$conf"
	cat >"$conf/daemons" <<-CONF
		zebra=yes
		bgpd=yes
		vtysh_enable=yes
	CONF
	cat >"$conf/frr.conf" <<-CONF
		frr defaults traditional
		hostname $FRR
		!
		router bgp $ROUTER_ASN
		 bgp router-id $ROUTER_IP
		 no bgp ebgp-requires-policy
		 neighbor pier peer-group
		 neighbor pier remote-as $NODE_ASN
		 bgp listen range 198.51.100.0/24 peer-group pier
		 address-family ipv4 unicast
		  maximum-paths 8
		 exit-address-family
		!
	CONF
	docker run -d --name "$FRR" --network "$NETWORK" --ip "$ROUTER_IP" --privileged \
		--sysctl net.ipv4.ip_forward=1 \
		-v "$conf/daemons:/etc/frr/daemons:ro" -v "$conf/frr.conf:/etc/frr/frr.conf:ro" \
		"$FRR_IMAGE" >/dev/null
}

# start_client: the client the scenarios send from, on the segment, with
# the BGP pool routed through the router (as the netns lab's client).
start_client() {
	docker inspect "$CLIENT" >/dev/null 2>&1 && return
	log "client $CLIENT_IMAGE, $BGP_POOL via $ROUTER_IP"
	docker run -d --name "$CLIENT" --network "$NETWORK" --cap-add NET_RAW --cap-add NET_ADMIN \
		"$CLIENT_IMAGE" sleep infinity >/dev/null
	docker exec "$CLIENT" ip route replace "$BGP_POOL" via "$ROUTER_IP"
}

install_pier() {
	log "installing Pier (manifests/base, then manifests/overlays/l2-bgp)"
	kubectl apply --server-side -k "$ROOT/manifests/base"
	kubectl wait --for=condition=Established --timeout=60s crd/ipaddresspools.pier.dev crd/l2advertisements.pier.dev \
		crd/bgppeers.pier.dev crd/bgpadvertisements.pier.dev
	kubectl -n pier-system get secret pier-memberlist >/dev/null 2>&1 ||
		kubectl -n pier-system create secret generic pier-memberlist --from-file=key=<(head -c 32 /dev/urandom)
	kubectl apply --server-side -k "$ROOT/manifests/overlays/l2-bgp"
	kubectl -n pier-system rollout status deployment/pier-controller --timeout=5m
	kubectl -n pier-system rollout status daemonset/pier-speaker --timeout=5m
	kubectl apply --server-side -f "$ROOT/e2e/kind/workload.yaml"
	kubectl set image deployment/echo echo="$ECHO_IMAGE"
	kubectl rollout status deployment/echo --timeout=5m
}

# scenarios: the shared checks (e2e/scenario) through TestKindScenarios,
# which reaches the containers with docker exec.
scenarios() {
	log "scenarios (go test ./e2e/kind -run TestKindScenarios)"
	(cd "$ROOT" && PIER_KIND_KUBECONFIG="$KUBECONFIG" PIER_KIND_ROUTER="$FRR" PIER_KIND_CLIENT="$CLIENT" \
		go test -count=1 -v -timeout 15m -run '^TestKindScenarios$' ./e2e/kind/) || fail "scenarios failed"
	log "all scenarios passed"
}

down() {
	log "removing cluster $CLUSTER, $FRR, $CLIENT and network $NETWORK"
	kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	docker rm -f "$FRR" "$CLIENT" >/dev/null 2>&1 || true
	docker network rm "$NETWORK" >/dev/null 2>&1 || true
	rm -rf "$ROOT/bin/kind-lab"
}

cleanup() {
	local rc=$?
	if [[ "${KEEP:-0}" != 1 && "${ACTION}" == all ]]; then
		down
	fi
	rm -rf "$WORK"
	exit "$rc"
}

ACTION="${1:-all}"
trap cleanup EXIT
case "$ACTION" in
up)
	up
	kind get kubeconfig --name "$CLUSTER" >"$ROOT/bin/kind-lab.kubeconfig"
	log "kubeconfig: $ROOT/bin/kind-lab.kubeconfig"
	;;
test)
	kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
	scenarios
	;;
down) down ;;
all)
	up
	scenarios
	;;
*) fail "usage: $0 [up|test|down]" ;;
esac
