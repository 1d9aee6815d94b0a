package benchenv

import (
	"os"
	"runtime/pprof"
	"testing"
)

// CPUProfile profiles this process's CPU into the file the environment
// variable name gives, when set (a benchmark's idle window, say), until the
// returned stop is called.
func CPUProfile(tb testing.TB, name string) (stop func()) {
	path := os.Getenv(name)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// HeapProfile writes a heap profile to the file the environment variable
// name gives, when set.
func HeapProfile(tb testing.TB, name string) {
	path := os.Getenv(name)
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}
