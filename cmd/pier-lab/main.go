// Command pier-lab drives the network-namespace lab: `demo` brings up a site
// with a control plane (or, with -mode pods, a cluster of kubelets with Pier
// installed by its chart) and waits for Ctrl-C, `clean` removes what earlier
// runs left behind, `echo` is a TCP/UDP echo server to run inside hosts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
)

const usage = `usage: pier-lab demo [-nodes N] [-mode l2|bgp|pods] [-relay PATH] | clean [-all] | echo [-tcp ADDR] [-udp ADDR] [-name NAME [-proxy]]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(ctx, log, os.Args[2:])
	case "clean":
		err = clean(log, os.Args[2:])
	case "echo":
		err = serveEcho(ctx, log, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q\n%s", os.Args[1], usage)
	}
	if err != nil {
		log.Error("pier-lab failed", "err", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	nodes := fs.Int("nodes", 3, "node namespaces")
	controller := fs.String("controller", siblingBinary("pier-controller"), `pier-controller executable ("": none)`)
	speaker := fs.String("speaker", siblingBinary("pier-speaker"), `pier-speaker executable ("": none)`)
	relayBin := fs.String("relay", siblingBinary("pier-relay"), `pier-relay executable for the relay section of the L2 demo ("": none)`)
	mode := fs.String("mode", "l2", `"l2" (ARP/NDP), "bgp" (FRR on the router peers with the nodes) or "pods" (kubelets; Pier installed by its chart)`)
	fs.Parse(args)
	if *mode == "pods" {
		return demoPods(ctx, log, *nodes)
	}
	if *mode != "l2" && *mode != "bgp" || *mode == "bgp" && (*controller == "" || *speaker == "") {
		return fmt.Errorf("demo -mode %q: want l2, or bgp with the controller and speaker", *mode)
	}
	env, err := kubelab.Up(ctx, kubelab.Options{
		Nodes: *nodes, ControllerBinary: *controller, SpeakerBinary: *speaker, Logger: log,
		SpeakerArgs: []string{"--local-vip", "--metrics-addr", "0"},
	})
	if err != nil {
		return err
	}
	defer env.Close()
	if err := env.Describe(os.Stdout); err != nil {
		return err
	}
	if *mode == "bgp" {
		return demoBGP(ctx, env)
	}
	if *controller != "" {
		addrs, err := env.CreateDemoService(ctx, "calls")
		if err != nil {
			return err
		}
		fmt.Printf("Service default/calls (8443/TCP, 16384/UDP) got %v from pool lab-l2.\n", addrs)
		if *speaker != "" {
			node, mac, err := env.WhoAnswers(ctx, addrs[0])
			if err != nil {
				return err
			}
			fmt.Printf("%s is answered on the L2 segment by %s (%s); try: ip netns exec %s arping -c 3 -i eth1 %s\n",
				addrs[0], node, mac, env.Site.Router.NS, addrs[0])
		}
		fmt.Println()
	}
	if *controller != "" && *speaker != "" && *relayBin != "" {
		if err := demoRelay(ctx, env, *relayBin); err != nil {
			return err
		}
	}
	<-ctx.Done()
	log.Info("tearing down")
	return nil
}

// siblingBinary is name next to this executable (make build puts both in bin/).
func siblingBinary(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	path := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

func clean(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("clean", flag.ExitOnError)
	all := fs.Bool("all", false, "also remove labs whose owning process still runs")
	fs.Parse(args)
	removed, err := lab.Clean(*all)
	log.Info("lab clean", "removed", len(removed), "names", removed)
	return err
}

func serveEcho(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	opts := echo.Options{Logger: log}
	fs.StringVar(&opts.TCP, "tcp", ":7007", "TCP listen address (empty: none)")
	fs.StringVar(&opts.UDP, "udp", ":7007", "UDP listen address (empty: none)")
	fs.StringVar(&opts.Name, "name", "", "answer with this name and the client seen (a calling-server stand-in)")
	fs.BoolVar(&opts.ProxyProtocol, "proxy", false, "with -name: read PROXY protocol v2 headers and report their client")
	fs.Parse(args)
	return echo.Serve(ctx, opts, os.Stdout)
}
