package podlab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/pierctl/status"
)

// TestInstallMistakesSayWhy: an install that cannot work ends in a message
// that names the cause where an operator looks first (Pod status and
// events), not in a silent hang.
func TestInstallMistakesSayWhy(t *testing.T) {
	e := cluster(t)
	for _, tc := range []struct {
		name string
		set  []string
		// want is found in a Pier Pod's waiting message or events (a bad
		// image stops the controller first, and with it the memberlist key
		// the speakers wait for), and in what pierctl status says of
		// component.
		want      []string
		component string
		before    func(context.Context, *podlab.Env) error
	}{
		{"image tag not in the registry", []string{"--set", "image.tag=no-such-tag"}, []string{"no-such-tag", "not found"}, "controller", nil},
		{"registry unreachable", []string{"--set", "image.registry=192.0.2.1:5999"}, []string{"192.0.2.1:5999", "connection refused"}, "controller", nil},
		{"memberlist Secret missing", []string{"--set", "speaker.memberlist.existingSecret=no-such-secret"}, []string{"no-such-secret", "not found"}, "speaker", nil},
		// An install that skips the CRDs on a cluster without them (GitOps
		// tools that apply CRDs separately, out of order).
		{"CRDs not applied first", []string{"--skip-crds"}, []string{"Pier's CRDs are not installed", "ipaddresspools.pier.dev"}, "controller", deleteCRDs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.before != nil {
				if err := tc.before(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"install", "pier", "charts/pier", "-n", podlab.Namespace, "--create-namespace"}, e.ChartValues("lab")...)
			if _, err := e.Helm(ctx, append(args, tc.set...)...); err != nil {
				t.Fatal(err)
			}
			defer uninstallChart(t, e)
			var last string
			err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				last = podTrouble(ctx, e)
				for _, w := range tc.want {
					if !strings.Contains(last, w) {
						return false, nil
					}
				}
				return true, nil
			})
			if err != nil {
				t.Fatalf("no message naming %q: %v\n%s", tc.want, err, last)
			}
			t.Logf("%s", firstLine(last, tc.want[0]))
			statusNames(t, e, tc.component, tc.want)
		})
	}
}

// statusNames waits until pierctl status names a Pod of component as not
// ready, with every string of want in why.
func statusNames(t *testing.T, e *podlab.Env, component string, want []string) {
	t.Helper()
	ctx := context.Background()
	var text bytes.Buffer
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		objs, err := status.Read(ctx, e.Cluster.Config, podlab.Namespace)
		if err != nil && !errors.Is(err, status.ErrNotInstalled) {
			return false, err
		}
		st := status.Build(objs)
		text.Reset()
		if err := st.WriteText(&text, time.Now()); err != nil {
			return false, err
		}
		for _, c := range st.Components {
			for _, p := range c.Problems {
				if c.Name == component && containsAll(p.Why, want) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pierctl status does not name %s with %q: %v\n%s", component, want, err, text.String())
	}
	head, _, _ := strings.Cut(text.String(), "\nPOOLS")
	t.Logf("pierctl status:\n%s", head)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// deleteCRDs removes Pier's CRDs (a later helm install puts them back).
func deleteCRDs(ctx context.Context, e *podlab.Env) error {
	out, err := e.Kubectl(ctx, "get", "crd", "-o", "name")
	if err != nil {
		return err
	}
	var pier []string
	for _, name := range strings.Fields(out) {
		if strings.HasSuffix(name, ".pier.dev") {
			pier = append(pier, name)
		}
	}
	if len(pier) == 0 {
		return nil
	}
	_, err = e.Kubectl(ctx, append([]string{"delete", "--wait"}, pier...)...)
	return err
}

// podTrouble is what Pier's Pods' statuses and events say.
func podTrouble(ctx context.Context, e *podlab.Env) string {
	var b strings.Builder
	pods, err := e.Client.CoreV1().Pods(podlab.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, "%s: %s: %s\n", p.Name, w.Reason, w.Message)
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				fmt.Fprintf(&b, "%s: last exit %d: %s\n", p.Name, t.ExitCode, t.Message)
			}
		}
		evs, err := e.Client.CoreV1().Events(podlab.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
		if err != nil {
			continue
		}
		for _, ev := range evs.Items {
			fmt.Fprintf(&b, "%s: event %s: %s\n", p.Name, ev.Reason, ev.Message)
		}
	}
	return b.String()
}

func firstLine(s, with string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, with) {
			return line
		}
	}
	return ""
}
