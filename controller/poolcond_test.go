package controller_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
)

// Every IPAddressPool says in its Valid condition whether it is in use and,
// when it is left out, which field config.Parse faulted; fixing the pool
// flips the condition and the pool serves Services.
func TestPoolValidCondition(t *testing.T) {
	e := newEnv(t)
	e.create(pool("edge", "198.51.100.200-198.51.100.210"))
	e.startController()
	e.create(pool("overlap", "198.51.100.208/29"))               // overlaps edge, which comes first by name
	e.create(pool("unusable", "203.0.113.0/30", "224.0.0.0/28")) // multicast: no Service can use it

	edge := e.waitValid("edge", metav1.ConditionTrue)
	if c := validOf(edge); c.Reason != "Accepted" {
		t.Errorf("edge: reason %q, want Accepted", c.Reason)
	}
	for _, tc := range []struct{ pool, field, says string }{
		{"overlap", "spec.addresses[0]", `"198.51.100.208/29" overlaps IPAddressPool pier-system/edge spec.addresses[0]`},
		{"unusable", "spec.addresses[1]", "which no Service can use"},
	} {
		c := validOf(e.waitValid(tc.pool, metav1.ConditionFalse))
		if c.Reason != "Invalid" || !strings.HasPrefix(c.Message, tc.field+": ") || !strings.Contains(c.Message, tc.says) {
			t.Errorf("%s: reason %q message %q; want Invalid, naming %s and saying %q", tc.pool, c.Reason, c.Message, tc.field, tc.says)
		}
	}

	t.Run("kubectl get shows the condition", func(t *testing.T) {
		kubectl := filepath.Join(cluster.DefaultBinDir(), "kubectl")
		out, err := exec.Command(kubectl, "--kubeconfig", e.cluster.Kubeconfig, "-n", pierNS,
			"get", "ipaddresspools", "-o", "wide").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get: %v\n%s", err, out)
		}
		rows := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				rows[f[0]] = line
			}
		}
		for name, want := range map[string][]string{
			"NAME":     {"VALID", "MESSAGE"},
			"edge":     {" True "},
			"unusable": {" False ", "spec.addresses[1]: "},
		} {
			for _, w := range want {
				if !strings.Contains(rows[name], w) {
					t.Errorf("row %s of kubectl get -o wide lacks %q:\n%s", name, w, out)
				}
			}
		}
	})

	t.Run("fixed pools flip to True and serve", func(t *testing.T) {
		e.updatePool("unusable", "203.0.113.0/30")
		e.updatePool("overlap", "198.51.100.216/29")
		for _, name := range []string{"unusable", "overlap"} {
			c := validOf(e.waitValid(name, metav1.ConditionTrue))
			if c.Reason != "Accepted" || c.ObservedGeneration != 2 {
				t.Errorf("%s: reason %q generation %d, want Accepted at 2", name, c.Reason, c.ObservedGeneration)
			}
		}
		e.create(service("default", "calls", annotate(v1alpha1.AnnotationAddressPool, "unusable")))
		if got := e.waitAssigned("default", "calls"); !strings.HasPrefix(got[0], "203.0.113.") {
			t.Errorf("calls got %v, want an address of pool unusable", got)
		}
	})

	t.Run("an unchanged pool keeps its status as written", func(t *testing.T) {
		before := e.waitValid("edge", metav1.ConditionTrue)
		e.create(pool("late", "198.51.100.240/29")) // a new sync and status round, edge unchanged
		e.waitValid("late", metav1.ConditionTrue)
		after := e.waitValid("edge", metav1.ConditionTrue)
		if before.ResourceVersion != after.ResourceVersion {
			t.Errorf("edge was written again (resourceVersion %s -> %s); conditions %+v -> %+v",
				before.ResourceVersion, after.ResourceVersion, before.Status.Conditions, after.Status.Conditions)
		}
	})
}

// waitValid waits until the pool's Valid condition has status want for
// the pool's current generation.
func (e *env) waitValid(name string, want metav1.ConditionStatus) *v1alpha1.IPAddressPool {
	e.t.Helper()
	return e.waitPool(name, func(p *v1alpha1.IPAddressPool) bool {
		c := validOf(p)
		return c != nil && c.Status == want && c.ObservedGeneration == p.Generation
	})
}

func validOf(p *v1alpha1.IPAddressPool) *metav1.Condition {
	return apimeta.FindStatusCondition(p.Status.Conditions, "Valid")
}
