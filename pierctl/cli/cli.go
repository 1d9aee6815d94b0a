// Package cli implements the pierctl commands: flags, kubeconfig, output
// and exit codes. cmd/pierctl only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command could not do its job
	ExitUsage   = 2 // bad flags or arguments
	ExitDropped = 3 // migrate --strict: something was not carried over
)

// IO are the command's streams.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

const usage = `pierctl: inspect Pier and migrate from MetalLB.

Usage:
  pierctl status  [--kubeconfig FILE] [--context NAME] [-n NAMESPACE] [-o text|json]
  pierctl migrate (-f FILE|DIR|- ... | --from-cluster) [--metallb-namespace NS]
                  [--namespace NS] [-o DIR] [--strict]

Run "pierctl COMMAND -h" for a command's flags.
Exit codes: 0 ok, 1 failure, 2 usage, 3 migrate --strict dropped something.
`

// Main runs pierctl with args (without the program name).
func Main(ctx context.Context, args []string, stdio IO) int {
	if len(args) == 0 {
		fmt.Fprint(stdio.Err, usage)
		return ExitUsage
	}
	switch args[0] {
	case "status":
		return statusCmd(ctx, args[1:], stdio)
	case "migrate":
		return migrateCmd(ctx, args[1:], stdio)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdio.Out, usage)
		return ExitOK
	}
	fmt.Fprintf(stdio.Err, "pierctl: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

// parse parses flags; ok false means the command must return code.
func parse(fs *flag.FlagSet, args []string, stdio IO) (code int, ok bool) {
	fs.SetOutput(stdio.Err)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK, false
	case err != nil:
		return ExitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(stdio.Err, "pierctl %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

// kubeFlags are the flags that pick a cluster.
type kubeFlags struct{ kubeconfig, context string }

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context (default the current one)")
}

// connect loads the kubeconfig and checks that the API server answers, so
// that an unreachable server is reported once, plainly.
func (k *kubeFlags) connect() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errors.New("no kubeconfig: pass --kubeconfig or set KUBECONFIG")
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := disc.ServerVersion(); err != nil {
		return nil, unreachable(cfg.Host, err)
	}
	return cfg, nil
}

// unreachable words a failed first request: a network error says the API
// server cannot be reached; anything else (TLS, credentials) is passed on.
func unreachable(host string, err error) error {
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("cannot reach the API server at %s: %w", host, err)
	}
	return fmt.Errorf("API server at %s: %w", host, err)
}
