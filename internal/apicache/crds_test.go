package apicache

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestMissingCRDs(t *testing.T) {
	gv := schema.GroupVersion{Group: "pier.dev", Version: "v1alpha1"}
	want := []string{"ipaddresspools", "relays"}
	for _, tc := range []struct {
		name    string
		served  []string // nil: the group is not served at all
		missing []string
	}{
		{"all served", []string{"ipaddresspools", "relays", "relays/status"}, nil},
		{"one missing", []string{"ipaddresspools"}, []string{"relays.pier.dev"}},
		{"group absent", nil, []string{"ipaddresspools.pier.dev", "relays.pier.dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}
			if tc.served != nil {
				rl := &metav1.APIResourceList{GroupVersion: gv.String()}
				for _, r := range tc.served {
					rl.APIResources = append(rl.APIResources, metav1.APIResource{Name: r})
				}
				disc.Resources = []*metav1.APIResourceList{rl}
			}
			got, err := MissingCRDs(disc, gv, want...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.missing, got); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			err = RequireCRDs(disc, gv, want...)
			if (len(tc.missing) > 0) != errors.Is(err, ErrCRDsMissing) {
				t.Errorf("RequireCRDs: %v", err)
			}
		})
	}
}
