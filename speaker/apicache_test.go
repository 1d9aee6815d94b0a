package speaker

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
)

// The real API cache answers the speaker's lookups of slices by Service
// (InNamespace with MatchingFields, as readService asks) from the index
// newAPICache makes: a Service's slices, not those of a Service of the
// same name in another namespace. Of the statuses it holds this node's
// only (before, every node's: 12 MiB at 20,000 Services).
func TestAPICacheIndexesByService(t *testing.T) {
	e := newAPIEnv(t, cluster.Options{})
	for _, ns := range []string{"apps", "other"} {
		e.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		for _, svc := range []string{"web", "db"} {
			for _, n := range []string{"1", "2"} {
				e.create(t, &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + n,
						Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
					AddressType: discoveryv1.AddressTypeIPv4,
				})
			}
			for _, node := range []string{"node1", "node2"} {
				e.create(t, &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
					Namespace: "pier-system", Name: statusName(ns+"/"+svc, node),
					Labels: map[string]string{v1alpha1.LabelServiceName: svc, v1alpha1.LabelServiceNamespace: ns, v1alpha1.LabelNode: node},
				}})
			}
		}
	}
	scheme, err := nodeScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := newAPICache(e.cl.Config, scheme, restMapper(), "pier-system", "pier-system", "node1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache not synced")
	}
	names := func(list client.ObjectList, opts ...client.ListOption) []string {
		t.Helper()
		var out []string
		if err := c.List(ctx, list, opts...); err != nil {
			t.Fatal(err)
		}
		switch l := list.(type) {
		case *discoveryv1.EndpointSliceList:
			for _, o := range l.Items {
				out = append(out, o.Namespace+"/"+o.Name)
			}
		case *v1alpha1.ServiceL2StatusList:
			for _, o := range l.Items {
				out = append(out, o.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	var es discoveryv1.EndpointSliceList
	got := names(&es, client.InNamespace("other"), client.MatchingFields{sliceServiceIndex: "other/web"})
	if diff := cmp.Diff([]string{"other/web-1", "other/web-2"}, got); diff != "" {
		t.Errorf("slices of other/web (-want +got):\n%s", diff)
	}
	var st v1alpha1.ServiceL2StatusList
	got = names(&st, client.InNamespace("pier-system"))
	want := []string{statusName("apps/db", "node1"), statusName("apps/web", "node1"), statusName("other/db", "node1"), statusName("other/web", "node1")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses cached (-want +got):\n%s", diff)
	}
}
