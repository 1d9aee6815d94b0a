// Package benchenv reads the settings a benchmark is given in its
// environment.
package benchenv

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Sizes is the comma-separated list of counts in the environment
// variable name, e.g. PIER_BENCH_SERVICES="1000,5000,20000", each run as
// its own sub-benchmark; def when the variable is unset or empty.
func Sizes(name, def string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(cmp.Or(os.Getenv(name), def), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a count", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}
