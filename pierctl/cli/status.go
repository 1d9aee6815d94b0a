package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/pier-lb/pier/pierctl/migrate"
	"github.com/pier-lb/pier/pierctl/status"
)

func statusCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var k kubeFlags
	k.register(fs)
	namespace := fs.String("n", migrate.DefaultNamespace, "Pier's namespace")
	output := fs.String("o", "text", "output format: text or json")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stdio.Err, "pierctl status: -o %q: want text or json\n", *output)
		return ExitUsage
	}
	cfg, err := k.connect()
	if err != nil {
		fmt.Fprintf(stdio.Err, "pierctl status: %v\n", err)
		return ExitFailure
	}
	objs, err := status.Read(ctx, cfg, *namespace)
	notInstalled := errors.Is(err, status.ErrNotInstalled) // Pier's Pods still say why
	if err != nil && !notInstalled {
		fmt.Fprintf(stdio.Err, "pierctl status: %v\n", err)
		return ExitFailure
	}
	st := status.Build(objs)
	if *output == "json" {
		err = st.WriteJSON(stdio.Out)
	} else {
		err = st.WriteText(stdio.Out, time.Now())
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "pierctl status: %v\n", err)
		return ExitFailure
	}
	if notInstalled {
		fmt.Fprintf(stdio.Err, "pierctl status: %v\n", status.ErrNotInstalled)
		return ExitFailure
	}
	return ExitOK
}
