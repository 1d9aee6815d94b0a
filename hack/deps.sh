#!/usr/bin/env bash
# Installs the Debian packages the lab and its tests use, only those missing.
set -euo pipefail

PACKAGES=(
	iproute2 nftables kmod procps psmisc # namespaces, veth, bridges, sysctl
	arping ndisc6 tcpdump                 # L2 probes
	frr bird2                             # real BGP routers
	socat iperf3 nginx-light libnginx-mod-stream # reference relays and traffic
	shellcheck                            # lints e2e/kind/lab.sh (e2e/install)
	containerd runc docker-registry       # the pods lab: node runtimes, the site registry
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages must not start system-wide daemons: the lab runs its own instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
