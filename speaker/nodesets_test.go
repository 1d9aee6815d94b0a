package speaker

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/internal/procstat"
)

func sameMap(a, b map[string][]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Services allowed on the same nodes share one allowed-node map: at
// 20,000 Services on 100 nodes a map per target was most of the
// speaker's own memory.
func TestTargetsShareNodeMaps(t *testing.T) {
	var in Inputs
	in.Config = planConfig(t) // L2 on the nodes of zone a, Services app=web
	in.Nodes = []corev1.Node{node("node1", map[string]string{"zone": "a"}), node("node2", map[string]string{"zone": "a"})}
	for i := range 20 {
		svc := lbService(fmt.Sprintf("web-%d", i), fmt.Sprintf("198.51.100.%d", 10+i))
		svc.Labels["app"] = "web"
		if i%2 == 1 { // Local: allowed where its endpoint is ready
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			in.EndpointSlices = append(in.EndpointSlices, slice(svc.Name, map[string]bool{"node2": true}))
		}
		in.Services = append(in.Services, svc)
	}
	got := Targets(in)
	if len(got) != 20 {
		t.Fatalf("%d targets, want 20: the test proves nothing", len(got))
	}
	cluster, local := got[0].Nodes, got[1].Nodes
	if len(cluster) != 2 || len(local) != 1 {
		t.Fatalf("first targets' nodes %v and %v, want both nodes and node2", cluster, local)
	}
	for i, x := range got {
		want := cluster
		if i%2 == 1 {
			want = local
		}
		if !sameMap(x.Nodes, want) {
			t.Errorf("target %d (%s): its own map %v, want the one shared by its kind", i, x.Service, x.Nodes)
		}
	}
}

// An interned map equals the one asked for, a nil interface list (any
// interface) included; the table forgets maps no target uses once it has
// grown past its limit.
func TestNodeSetsInternAndPrune(t *testing.T) {
	sets := newNodeSets()
	anyIface := map[string][]string{"node1": nil}
	noIface := map[string][]string{"node1": {}}
	eth := map[string][]string{"node1": {"eth0"}}
	for _, m := range []map[string][]string{anyIface, noIface, eth} {
		if got := sets.intern(m); !sameMap(got, m) {
			t.Errorf("first intern of %#v returned another map %#v", m, got)
		}
		if got := sets.intern(map[string][]string{"node1": m["node1"]}); !sameMap(got, m) || !reflect.DeepEqual(got, m) {
			t.Errorf("intern of a copy of %#v returned %#v, want the first", m, got)
		}
	}
	live := map[string][]Target{"ns/kept": {{Service: "ns/kept", Nodes: eth}}}
	for i := range minNodeSets {
		sets.intern(map[string][]string{fmt.Sprintf("node-%d", i): nil})
	}
	sets.prune(live)
	if len(sets.byKey) != 1 || !sameMap(sets.intern(map[string][]string{"node1": {"eth0"}}), eth) {
		t.Errorf("after pruning the table holds %d maps, want the live one only", len(sets.byKey))
	}
	if got := sets.intern(map[string][]string{"node1": nil}); sameMap(got, anyIface) {
		t.Error("a map no target used survived pruning")
	}
}

// BenchmarkTargetsHeld: the memory the targets of PIER_BENCH_SERVICES
// Services (default 20,000; half externalTrafficPolicy Local, each with
// a ready endpoint on one node) hold on PIER_BENCH_NODES nodes (default
// 100), as the speaker keeps them: the live heap after Targets against
// before, in MiB.
func BenchmarkTargetsHeld(b *testing.B) {
	in, n := scaleInputs(b)
	for b.Loop() {
		before := procstat.LiveHeap()
		targets := Targets(in)
		after := procstat.LiveHeap()
		if len(targets) != n {
			b.Fatalf("%d targets, want %d", len(targets), n)
		}
		b.ReportMetric(float64(after-before)/(1<<20), "held-MiB")
		runtime.KeepAlive(targets)
	}
}

// scaleInputs are PIER_BENCH_SERVICES Services (default 20,000; half
// externalTrafficPolicy Local, each with a ready endpoint on one node) on
// PIER_BENCH_NODES nodes (default 100), all in one L2 pool; n is the
// number of Services.
func scaleInputs(b *testing.B) (in Inputs, n int) {
	n = benchEnvInt(b, "PIER_BENCH_SERVICES", 20000)
	nodes := benchEnvInt(b, "PIER_BENCH_NODES", 100)
	in.Config = planConfig(b)
	for i := range nodes {
		in.Nodes = append(in.Nodes, node(fmt.Sprintf("node%d", i), map[string]string{"zone": "a"}))
	}
	for i := range n {
		svc := lbService(fmt.Sprintf("web-%d", i), benchAddr(i).String())
		svc.Labels["app"] = "web"
		if i%2 == 1 {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			in.EndpointSlices = append(in.EndpointSlices, slice(svc.Name, map[string]bool{fmt.Sprintf("node%d", i%nodes): true}))
		}
		in.Services = append(in.Services, svc)
	}
	in.Config.Pools[0].Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}
	return in, n
}
