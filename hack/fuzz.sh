#!/usr/bin/env bash
# Runs each fuzz target ("pkg:FuzzName") for FUZZTIME, FUZZJOBS targets at
# a time with one fuzzing worker each (default 2: most of a short run is
# building the instrumented test binary, which one core does). Go before
# 1.27 may end a duration-bound fuzz run with "context deadline exceeded"
# and no failing input (golang.org/issue/75804, a race in its fuzz
# coordinator): such a run is tried once more; a run that writes a failing
# input under the package's testdata/fuzz/ fails.
set -euo pipefail
export go=${GO:-go}
export fuzztime=${FUZZTIME:-5s}
jobs=${FUZZJOBS:-2}

inputs() { find "$1" -type f 2>/dev/null | sort || true; }

fuzz_one() {
	"$go" test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -parallel 1 "$1" 2>&1 | sed "s|^|$1 $2: |"
	return "${PIPESTATUS[0]}"
}

fuzz_target() {
	local pkg=${1%%:*} name=${1##*:}
	local corpus=$pkg/testdata/fuzz/$name before
	echo "fuzz $pkg $name for $fuzztime"
	before=$(inputs "$corpus")
	if fuzz_one "$pkg" "$name"; then
		return 0
	fi
	if [[ "$(inputs "$corpus")" != "$before" ]]; then
		echo "fuzz $pkg $name: failing input written under $corpus" >&2
		return 1
	fi
	echo "fuzz $pkg $name failed without a failing input (golang.org/issue/75804): once more" >&2
	fuzz_one "$pkg" "$name"
}
export -f inputs fuzz_one fuzz_target

# xargs exits non-zero when any target failed; every target still runs.
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'fuzz_target "$1"' _ {}
