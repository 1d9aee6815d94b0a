#!/usr/bin/env bash
# make test's body: lint, every test package with the race detector, then
# the fuzz targets, in two lanes that run side by side.
#
#   hack/test.sh LABPKG...
#
# The lab lane runs the packages given (labs, control planes, protocols on
# real timers: failover clocks, call gaps and memberlist probes are what
# they measure) two at a time at normal priority, in the order given (the
# slowest first, so none starts last). The other lane runs lint, every
# other package and the fuzz targets at nice $UNIT_NICE: the labs spend much
# of their time waiting on timers and leave a core idle, which this lane
# takes and gives back whenever a lab needs it. Either lane failing fails
# the run; the unit lane's output is printed when it ends.
set -uo pipefail
go=${GO:-go}
make=${MAKE:-make}
read -r -a testflags <<<"${GOTESTFLAGS:--race -count=1 -timeout 30m}"
nice=${UNIT_NICE:-10}
labs=("$@")

# Every package of the module but the lab lane's.
others() {
	"$go" list ./... | grep -vxF -f <("$go" list "${labs[@]}")
}

unit_lane() {
	"$make" --no-print-directory lint || return 1
	mapfile -t pkgs < <(others)
	"$go" test "${testflags[@]}" "${pkgs[@]}" || return 1
	"$make" --no-print-directory fuzz
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
(renice -n "$nice" -p "$BASHPID" >/dev/null
	unit_lane >"$log" 2>&1
	rc=$?
	echo "=== unit lane (lint, other packages, fuzz): exit $rc"
	cat "$log"
	exit "$rc") &
unit=$!

"$go" test "${testflags[@]}" "${labs[@]}"
labrc=$?
wait "$unit"
unitrc=$?
echo "=== lab lane: exit $labrc; unit lane: exit $unitrc"
((labrc == 0 && unitrc == 0))
