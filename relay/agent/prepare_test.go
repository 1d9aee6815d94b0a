package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pier-lb/pier/e2e/prereq"
)

// The chart's init container runs PrepareStateDir as root with CAP_CHOWN
// only (no CAP_FOWNER, no CAP_DAC_OVERRIDE). TestPrepareStateDirChownOnly
// runs it so, in a child of this test binary under setpriv.
func TestPrepareStateDirChownOnly(t *testing.T) {
	if os.Getenv("PIER_PREPARE_STATE_DIR") != "" {
		return // the child's own run of this test: TestMain did the work
	}
	prereq.Root(t)
	prereq.Tools(t, "setpriv")
	dir := filepath.Join(t.TempDir(), "pier-relay")
	for _, run := range []string{"first start", "restart"} {
		cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set=-all,+chown", "--",
			os.Args[0], "-test.run=^TestPrepareStateDirChownOnly$")
		cmd.Env = append(os.Environ(), "PIER_PREPARE_STATE_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: PrepareStateDir with CAP_CHOWN only: %v\n%s", run, err, out)
		}
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("mode %v, want 0700", info.Mode().Perm())
	}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("PIER_PREPARE_STATE_DIR"); dir != "" {
		if err := PrepareStateDir(dir, "65532:65532"); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
