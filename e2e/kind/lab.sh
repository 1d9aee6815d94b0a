#!/usr/bin/env bash
# Pier's kind lab, for machines with Docker: a kind cluster on its own Docker
# network (198.51.100.0/24, the netns lab's L2 segment), an FRR container as
# the BGP router at 198.51.100.1, Pier installed from the image tarball with
# the l2-bgp overlay, and the netns lab's scenarios:
#   1. a Service gets an address from the L2 pool (198.51.100.200-250);
#   2. exactly one node answers ARP for it (the one its ServiceL2Status names)
#      and HTTP through it reaches a backend;
#   3. a Service from the BGP pool (203.0.113.0/24) is learned by FRR from
#      every node and reached through the router.
#
# Usage: e2e/kind/lab.sh [up|test|down]   (default: up, test, then down;
#        KEEP=1 leaves everything running)
# Needs: docker, kind, kubectl, and the image tarball (make image).
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

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
	local what="$1" timeout="$2"
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
		sleep 2
	done
}

up() {
	[[ -f "$IMAGE_TAR" ]] || fail "no image tarball at $IMAGE_TAR (run make image)"
	log "docker network $NETWORK (198.51.100.0/24)"
	docker network inspect "$NETWORK" >/dev/null 2>&1 ||
		docker network create --driver bridge --subnet 198.51.100.0/24 --ip-range 198.51.100.0/25 \
			--gateway 198.51.100.254 "$NETWORK" >/dev/null
	start_frr
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
		-v "$conf/daemons:/etc/frr/daemons:ro" -v "$conf/frr.conf:/etc/frr/frr.conf:ro" \
		"$FRR_IMAGE" >/dev/null
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

# service_ip NAME: the Service's first ingress address, once it has one.
service_ip() {
	local ip=""
	wait_for "an address for Service $1" 120 bash -c \
		"kubectl get service '$1' -o jsonpath='{.status.loadBalancer.ingress[0].ip}' | grep -q ."
	ip="$(kubectl get service "$1" -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"
	echo "$ip"
}

client() { docker run --rm --network "$NETWORK" --cap-add NET_RAW "$CLIENT_IMAGE" "$@"; }

scenario_l2() {
	local ip owner owner_mac macs
	ip="$(service_ip calls-l2)"
	log "calls-l2 got $ip"
	[[ "$ip" =~ ^198\.51\.100\.(2[0-4][0-9]|250)$ ]] || fail "$ip is not from the L2 pool 198.51.100.200-250"
	wait_for "a ServiceL2Status for calls-l2" 60 bash -c \
		"kubectl -n pier-system get servicel2statuses -l pier.dev/service-name=calls-l2 -o name | grep -q ."
	owner="$(kubectl -n pier-system get servicel2statuses -l pier.dev/service-name=calls-l2 -o jsonpath='{.items[0].status.node}')"
	owner_mac="$(docker exec "$owner" cat /sys/class/net/eth0/address)"
	macs="$(client arping -c 3 -I eth0 "$ip" | grep -oiE '([0-9a-f]{2}:){5}[0-9a-f]{2}' | tr 'A-F' 'a-f' | sort -u)"
	[[ "$(wc -l <<<"$macs")" -eq 1 && -n "$macs" ]] || fail "ARP for $ip answered by: ${macs:-nobody}"
	[[ "$macs" == "$owner_mac" ]] || fail "ARP for $ip answered by $macs, but $owner ($owner_mac) owns it"
	log "ARP for $ip answered by $owner only ($owner_mac)"
	client curl -fsS --max-time 5 "http://$ip:8080/hostname" >/dev/null || fail "no HTTP answer at $ip:8080"
	log "HTTP through $ip reaches a backend"
}

scenario_bgp() {
	local ip nodes paths
	ip="$(service_ip calls-bgp)"
	log "calls-bgp got $ip"
	[[ "$ip" == 203.0.113.* ]] || fail "$ip is not from the BGP pool 203.0.113.0/24"
	nodes="$(kubectl get nodes -o name | wc -l)"
	wait_for "FRR to learn $ip/32 from $nodes nodes" 120 bash -c \
		"docker exec '$FRR' vtysh -c 'show bgp ipv4 unicast $ip/32' | grep -q 'Paths: ($nodes available'"
	paths="$(docker exec "$FRR" vtysh -c "show bgp ipv4 unicast $ip/32" | grep -o 'Paths: ([0-9]* available')"
	log "FRR: $paths for $ip/32"
	docker exec "$FRR" wget -qO- -T 5 "http://$ip:8080/hostname" >/dev/null || fail "no HTTP answer at $ip:8080 through FRR"
	log "HTTP through the router to $ip reaches a backend"
}

down() {
	log "removing cluster $CLUSTER, $FRR and network $NETWORK"
	kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	docker rm -f "$FRR" >/dev/null 2>&1 || true
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
	scenario_l2
	scenario_bgp
	log "all scenarios passed"
	;;
down) down ;;
all)
	up
	scenario_l2
	scenario_bgp
	log "all scenarios passed"
	;;
*) fail "usage: $0 [up|test|down]" ;;
esac
