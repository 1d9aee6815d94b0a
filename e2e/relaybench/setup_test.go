package relaybench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

var shared struct {
	once  sync.Once
	bench *Bench
	lab   *lab.Lab
	dir   string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.lab != nil {
		if err := shared.lab.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close lab:", err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// bench returns the lab, built once per test binary: the correctness test
// and every benchmark use the same client, relays and backend.
func bench(tb testing.TB) *Bench {
	tb.Helper()
	prereq.Root(tb)
	prereq.Tools(tb, "ip", "nginx", "socat", "iperf3")
	if _, err := os.Stat(NginxModule); err != nil {
		prereq.Missing(tb, "nginx stream module %s (libnginx-mod-stream, hack/deps.sh)", NginxModule)
	}
	shared.once.Do(func() { shared.bench, shared.err = build() })
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	if err := shared.bench.Running(); err != nil {
		tb.Fatal(err)
	}
	return shared.bench
}

func build() (*Bench, error) {
	dir, err := os.MkdirTemp("", "relaybench")
	if err != nil {
		return nil, err
	}
	shared.dir = dir
	bins, err := kubelab.BuildBinaries(dir, "pier-relay", "pier-loadgen")
	if err != nil {
		return nil, err
	}
	l, err := lab.New(lab.Options{})
	if err != nil {
		return nil, err
	}
	shared.lab = l
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Build(ctx, l, Options{
		Relay: bins["pier-relay"], Loadgen: bins["pier-loadgen"], Dir: dir,
		PprofAddr: os.Getenv("PIER_BENCH_PPROF"),
	})
}
