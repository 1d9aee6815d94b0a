package manifests_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

func TestCRDsParse(t *testing.T) {
	crds, err := manifests.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crds {
		names = append(names, c.Name)
	}
	want := []string{"bgpadvertisements.pier.dev", "bgpannouncementstatuses.pier.dev", "bgppeers.pier.dev", "bgpsessionstatuses.pier.dev",
		"configurationstatuses.pier.dev", "ipaddresspools.pier.dev", "l2advertisements.pier.dev", "relays.pier.dev", "servicel2statuses.pier.dev"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("CRDs (-want +got):\n%s", diff)
	}
	// The daemons refuse to start without these (apicache.RequireCRDs).
	var resources []string
	for _, r := range v1alpha1.Resources {
		resources = append(resources, r+"."+v1alpha1.GroupVersion.Group)
	}
	if diff := cmp.Diff(names, resources, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("v1alpha1.Resources against the CRDs (-CRDs +Resources):\n%s", diff)
	}
}

func TestInstallCRDsTwice(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 2; i++ { // the second run updates in place
		if err := manifests.InstallCRDs(ctx, c.Config); err != nil {
			t.Fatalf("install %d: %v", i+1, err)
		}
	}
}
