package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/e2e/prereq"
)

// kindScript is the kind lab, which needs Docker and so does not run here.
var kindScript = filepath.Join(repo, "e2e", "kind", "lab.sh")

// kindApplied is every manifest the kind lab applies; each is validated by
// TestManifestsAcceptedByAPIServer (the overlays there, the workload in
// TestKindWorkloadAccepted).
var kindApplied = []string{"-f e2e/kind/workload.yaml", "-k manifests/base", "-k manifests/overlays/l2-bgp"}

func TestKindScriptShellcheck(t *testing.T) {
	prereq.Tools(t, "shellcheck")
	out, err := exec.Command("shellcheck", "--external-sources", "--severity=style", kindScript).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck %s: %v\n%s", kindScript, err, out)
	}
}

// TestKindScriptAppliesValidatedManifests keeps kindApplied honest: the
// script applies exactly those files and directories.
func TestKindScriptAppliesValidatedManifests(t *testing.T) {
	data, err := os.ReadFile(kindScript)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`kubectl apply [^\n]*?(-[kf]) "\$ROOT/([^"]+)"`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		got = append(got, m[1]+" "+m[2])
	}
	slices.Sort(got)
	if diff := cmp.Diff(kindApplied, got); diff != "" {
		t.Errorf("manifests the kind lab applies (-validated +script):\n%s", diff)
	}
}
