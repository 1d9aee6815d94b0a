package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixtures returns the directories under testdata, each holding an
// input.yaml in MetalLB's format.
func fixtures(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/*/input.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// convertFixture converts dir/input.yaml.
func convertFixture(t *testing.T, dir string) Result {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return Convert(in, Options{})
}

func reportText(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestGolden compares each fixture's converted objects and report with
// output.yaml and report.txt (go test -update rewrites them), and checks
// that Pier's own parser accepts the converted objects.
func TestGolden(t *testing.T) {
	for _, dir := range fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res := convertFixture(t, dir)
			objs, err := res.Output()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := WriteYAML(&out, objs); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "output.yaml"), out.String())
			golden(t, filepath.Join(dir, "report.txt"), reportText(res.Findings))
			if _, err := config.Parse(res.Objects); err != nil {
				t.Errorf("config.Parse refuses the converted objects:\n%v", err)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
