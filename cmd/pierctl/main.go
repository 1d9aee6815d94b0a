// Command pierctl inspects Pier (status) and converts MetalLB
// configuration to Pier's (migrate). See pierctl/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pier-lb/pier/pierctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
