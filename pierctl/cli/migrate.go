package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/pierctl/migrate"
)

// files is a repeatable -f flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

type migrateFlags struct {
	kube        kubeFlags
	files       files
	fromCluster bool
	opts        migrate.Options
	outDir      string
	strict      bool
}

func migrateCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var f migrateFlags
	f.kube.register(fs)
	fs.Var(&f.files, "f", "MetalLB objects: a YAML/JSON file, a directory of them, or - for stdin (repeatable)")
	fs.BoolVar(&f.fromCluster, "from-cluster", false, "read MetalLB's objects from the cluster")
	fs.StringVar(&f.opts.MetalLBNamespace, "metallb-namespace", migrate.DefaultMetalLBNamespace, "MetalLB's namespace")
	fs.StringVar(&f.opts.Namespace, "namespace", migrate.DefaultNamespace, "Pier's namespace, for the objects written")
	fs.StringVar(&f.opts.PasswordNamespace, "bgp-password-namespace", config.DefaultPasswordNamespace, "namespace of BGP password Secrets, for the Secrets written")
	fs.StringVar(&f.outDir, "o", "", "write one file per object into this directory instead of stdout")
	fs.BoolVar(&f.strict, "strict", false, "exit 3 if anything could not be carried over")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	if (len(f.files) > 0) == f.fromCluster {
		fmt.Fprintln(stdio.Err, "pierctl migrate: give either -f or --from-cluster")
		return ExitUsage
	}
	in, err := f.read(ctx, stdio.In)
	if err != nil {
		fmt.Fprintf(stdio.Err, "pierctl migrate: %v\n", err)
		return ExitFailure
	}
	return f.convert(in, stdio)
}

func (f *migrateFlags) read(ctx context.Context, stdin io.Reader) ([]unstructured.Unstructured, error) {
	if f.fromCluster {
		cfg, err := f.kube.connect()
		if err != nil {
			return nil, err
		}
		return migrate.FromCluster(ctx, cfg, f.opts.MetalLBNamespace)
	}
	var out []unstructured.Unstructured
	for _, name := range f.files {
		objs, err := readPath(name, stdin)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// readPath reads a file, every .yaml/.yml/.json file of a directory (not
// recursive, by name), or stdin for "-".
func readPath(name string, stdin io.Reader) ([]unstructured.Unstructured, error) {
	if name == "-" {
		objs, err := migrate.Decode(stdin)
		if err != nil {
			return nil, fmt.Errorf("stdin: %w", err)
		}
		return objs, nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	paths := []string{name}
	if st.IsDir() {
		entries, err := os.ReadDir(name)
		if err != nil {
			return nil, err
		}
		paths = nil
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && slices.Contains([]string{".yaml", ".yml", ".json"}, ext) {
				paths = append(paths, filepath.Join(name, e.Name()))
			}
		}
	}
	var out []unstructured.Unstructured
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		objs, err := migrate.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// convert converts, writes the objects and the report, and checks the
// result with Pier's own parser (what the webhook runs).
func (f *migrateFlags) convert(in []unstructured.Unstructured, stdio IO) int {
	res := migrate.Convert(in, f.opts)
	objs, err := res.Output()
	if err == nil {
		if f.outDir != "" {
			err = migrate.WriteDir(f.outDir, objs)
		} else {
			err = migrate.WriteYAML(stdio.Out, objs)
		}
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "pierctl migrate: write: %v\n", err)
		return ExitFailure
	}
	dropped, notes := 0, 0
	for _, fd := range res.Findings {
		fmt.Fprintln(stdio.Err, fd)
		if fd.Level == migrate.Dropped {
			dropped++
		} else {
			notes++
		}
	}
	_, perr := config.Parse(res.Objects)
	for _, e := range config.Errors(perr) {
		fmt.Fprintf(stdio.Err, "invalid: %v\n", e)
	}
	fmt.Fprintf(stdio.Err, "pierctl migrate: %d objects written, %d not carried over, %d notes\n", len(objs), dropped, notes)
	switch {
	case perr != nil:
		fmt.Fprintln(stdio.Err, "pierctl migrate: the converted objects are not a valid Pier configuration (see the invalid: lines); Pier's webhook would refuse them")
		return ExitFailure
	case f.strict && dropped > 0:
		return ExitDropped
	}
	return ExitOK
}
