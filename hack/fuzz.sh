#!/usr/bin/env bash
# Runs each fuzz target ("pkg:FuzzName") for FUZZTIME. Go before 1.27 may
# end a duration-bound fuzz run with "context deadline exceeded" and no
# failing input (golang.org/issue/75804, a race in its fuzz coordinator):
# such a run is tried once more; a run that writes a failing input under
# the package's testdata/fuzz/ fails at once.
set -euo pipefail
go=${GO:-go}
fuzztime=${FUZZTIME:-5s}

inputs() { find "$1" -type f 2>/dev/null | sort || true; }

fuzz_one() {
	"$go" test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1"
}

for t in "$@"; do
	pkg=${t%%:*}
	name=${t##*:}
	corpus=$pkg/testdata/fuzz/$name
	echo "fuzz $pkg $name for $fuzztime"
	before=$(inputs "$corpus")
	if fuzz_one "$pkg" "$name"; then
		continue
	fi
	if [[ "$(inputs "$corpus")" != "$before" ]]; then
		echo "fuzz $pkg $name: failing input written under $corpus" >&2
		exit 1
	fi
	echo "fuzz $pkg $name failed without a failing input (golang.org/issue/75804): once more" >&2
	fuzz_one "$pkg" "$name"
done
