package install

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// TestHelmTemplateStable: GitOps tools render the chart with `helm
// template`, where lookup finds nothing. Two renderings must be the same,
// or each sync would give the speakers a new gossip key and a speaker
// restarted after it would stand alone. The key itself is never rendered:
// the controller creates it in the cluster (or the site names its own).
func TestHelmTemplateStable(t *testing.T) {
	for _, tt := range []struct {
		name   string
		set    []string
		secret string // the Secret the speakers mount
		ctlArg string // the controller's --memberlist-secret
	}{
		{name: "default", secret: "pier-memberlist", ctlArg: "--memberlist-secret=pier-memberlist"},
		{name: "existing secret", set: []string{"speaker.memberlist.existingSecret=site-gossip"},
			secret: "site-gossip", ctlArg: "--memberlist-secret="},
	} {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			first, second := helmSet(t, tt.set...), helmSet(t, tt.set...)
			if !bytes.Equal(first, second) {
				t.Errorf("two renderings differ:\n%s", cmp.Diff(string(first), string(second)))
			}
			objs := parse(t, first)
			if n := count(objs, "Secret"); n != 0 {
				t.Errorf("%d Secrets rendered, want none (the key would be in the rendered manifests)", n)
			}
			specs := podSpecs(t, objs)
			found := false
			for _, v := range specs["pier-speaker"].Volumes {
				if v.Name == "memberlist" && v.Secret != nil {
					found = true
					if v.Secret.SecretName != tt.secret || len(v.Secret.Items) != 0 {
						t.Errorf("speaker mounts Secret %q items %v, want all of %q (key and the rotation keys)",
							v.Secret.SecretName, v.Secret.Items, tt.secret)
					}
				}
			}
			if !found {
				t.Error("speaker has no memberlist Secret volume")
			}
			if args := specs["pier-controller"].Containers[0].Args; !slices.Contains(args, tt.ctlArg) {
				t.Errorf("controller args %v lack %s", args, tt.ctlArg)
			}
		})
	}
}

// TestHelmMemberlistProfile: speaker.memberlistProfile reaches the speaker;
// unset, the speaker's own default applies.
func TestHelmMemberlistProfile(t *testing.T) {
	profileArgs := func(data []byte) []string {
		var d appsv1.DaemonSet
		convert(t, find(t, parse(t, data), "DaemonSet", "pier-speaker"), &d)
		var out []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--memberlist-profile") {
				out = append(out, a)
			}
		}
		return out
	}
	if got := profileArgs(helmSet(t)); len(got) != 0 {
		t.Errorf("default rendering passes %v, want no --memberlist-profile", got)
	}
	lan := profileArgs(helmSet(t, "speaker.memberlistProfile=lan"))
	if diff := cmp.Diff([]string{"--memberlist-profile=lan"}, lan); diff != "" {
		t.Errorf("speaker.memberlistProfile=lan (-want +got):\n%s", diff)
	}
	// The speaker takes what the chart renders, and names a wrong profile.
	bins, err := kubelab.BuildBinaries(t.TempDir(), "pier-speaker")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{lan, "no-such-kubeconfig"}, // past the flags, to the API configuration
		{[]string{"--memberlist-profile=wan"}, "want fast-lan or lan"},
	} {
		args := append(slices.Clone(tc.args), "--kubeconfig=/no-such-kubeconfig", "--node-name=node1", "--bind-addr=192.0.2.11")
		out, _ := exec.Command(bins["pier-speaker"], args...).CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("pier-speaker %v: %s\nwant it to say %q", args, out, tc.want)
		}
	}
}

// helmSet renders the chart in pier-system with --set values.
func helmSet(t *testing.T, set ...string) []byte {
	t.Helper()
	args := []string{"template", "pier", filepath.Join(repo, "charts", "pier"), "--namespace", "pier-system"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return run(t, nil, helmPath(t), args...)
}
