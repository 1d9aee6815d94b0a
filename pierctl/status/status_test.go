package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func lbService(ns, name, pool string, ips ...string) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	if pool != "" {
		s.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: pool}
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func l2Status(ns, svc, node string, addrs ...string) v1alpha1.ServiceL2Status {
	return v1alpha1.ServiceL2Status{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelServiceName: svc, v1alpha1.LabelServiceNamespace: ns}},
		Status:     v1alpha1.ServiceL2StatusStatus{Node: node, Addresses: addrs, Interfaces: []string{"eth1"}},
	}
}

func bgpAnnounced(node string, svcs ...v1alpha1.BGPServiceAnnouncement) v1alpha1.BGPAnnouncementStatus {
	return v1alpha1.BGPAnnouncementStatus{Status: v1alpha1.BGPAnnouncementStatusStatus{Node: node, ServiceCount: int32(len(svcs)), Services: svcs}}
}

func configStatus(node, component string, problems ...v1alpha1.ConfigurationProblem) v1alpha1.ConfigurationStatus {
	return v1alpha1.ConfigurationStatus{Status: v1alpha1.ConfigurationStatusStatus{Node: node, Component: component,
		Valid: len(problems) == 0, Problems: problems}}
}

func TestBuildAndText(t *testing.T) {
	off := false
	since := metav1.NewTime(t0.Add(-90 * time.Second))
	objs := Objects{
		Namespace: "pier-system",
		Pools: []v1alpha1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "reserved"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/30"}, AutoAssign: &off}},
			{ObjectMeta: metav1.ObjectMeta{Name: "default"},
				Spec:   v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.250", "2001:db8:100::/120"}},
				Status: v1alpha1.IPAddressPoolStatus{AssignedIPv4: "1", AvailableIPv4: "50", AssignedIPv6: "1", AvailableIPv6: "255"}},
		},
		Services: []corev1.Service{
			lbService("default", "calls", "default", "198.51.100.200", "2001:db8:100::1"),
			lbService("default", "waiting", ""),
			lbService("default", "idle", "default", "198.51.100.201"),
			{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cluster-only"}},
		},
		L2: []v1alpha1.ServiceL2Status{
			l2Status("default", "calls", "node2", "2001:db8:100::1"),
			l2Status("default", "calls", "node1", "198.51.100.200"),
			{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelServiceName: "idle", v1alpha1.LabelServiceNamespace: "default"}},
				Status: v1alpha1.ServiceL2StatusStatus{Node: "node3", Addresses: []string{"198.51.100.201"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints}},
		},
		Sessions: []v1alpha1.BGPSessionStatus{
			{Status: v1alpha1.BGPSessionStatusStatus{Node: "node2", Peer: "router", PeerAddress: "198.51.100.1", State: "Active", BFDState: "Down",
				LastError: "BFD down (control detection time expired): BGP session closed and held down until BFD is Up again"}},
			{Status: v1alpha1.BGPSessionStatusStatus{Node: "node1", Peer: "router", PeerAddress: "198.51.100.1", State: "Established", BFDState: "Up", Since: &since, PrefixesSent: 2}},
		},
		BGPAnnouncements: []v1alpha1.BGPAnnouncementStatus{
			bgpAnnounced("node2", v1alpha1.BGPServiceAnnouncement{Service: "default/calls",
				Addresses: []string{"198.51.100.200", "2001:db8:100::1"}, Peers: []string{"r1", "r2"}}),
			bgpAnnounced("node1", v1alpha1.BGPServiceAnnouncement{Service: "default/calls",
				Addresses: []string{"198.51.100.200", "2001:db8:100::1"}, Peers: []string{"r1", "r2"}}),
			bgpAnnounced("node3", v1alpha1.BGPServiceAnnouncement{Service: "default/calls",
				Addresses: []string{"198.51.100.200"}, Peers: []string{"r1"}},
				v1alpha1.BGPServiceAnnouncement{Service: "default/idle", Addresses: []string{"198.51.100.201"}, Peers: []string{"r1"},
					NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints}),
		},
		Configurations: []v1alpha1.ConfigurationStatus{
			configStatus("node2", "speaker", v1alpha1.ConfigurationProblem{Kind: "BGPPeer", Namespace: "pier-system", Name: "r3",
				Field: "spec.peerAddress", Message: `"192.0.2.300" is not an IP address`},
				v1alpha1.ConfigurationProblem{Kind: "IPAddressPool", Namespace: "pier-system", Name: "p", Message: "overlaps"}),
			configStatus("node1", "speaker"),
			configStatus("node1", "relay", v1alpha1.ConfigurationProblem{Kind: "Relay", Namespace: "default", Name: "calls",
				Field: "spec.dataPath", Message: "Kernel cannot be combined with spec.routing.token"}),
		},
		// A speaker on node3 that answers for no address.
		Pods: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "pier-speaker-x", Labels: map[string]string{LabelName: "pier", LabelComponent: "speaker"}},
			Spec: corev1.PodSpec{NodeName: "node3"}}},
		Missing: []string{"relays.pier.dev"},
	}
	var out bytes.Buffer
	if err := Build(objs).WriteText(&out, t0); err != nil {
		t.Fatal(err)
	}
	want := `COMPONENTS
(no Deployment or DaemonSet labelled app.kubernetes.io/name=pier in pier-system)

POOLS
NAME      AUTO-ASSIGN  IPV4 USED/FREE  IPV6 USED/FREE  ADDRESSES                                         PROBLEM
default   yes          1/50            1/255           198.51.100.200-198.51.100.250,2001:db8:100::/120  -
reserved  no           -               -               203.0.113.0/30                                    -

SERVICES
NAMESPACE  NAME     ADDRESSES                       POOL     L2 ANNOUNCED BY                                                    BGP ANNOUNCED BY (TO PEERS)
default    calls    198.51.100.200,2001:db8:100::1  default  node1 (eth1) for 198.51.100.200; node2 (eth1) for 2001:db8:100::1  node1,node2 to r1,r2; node3 to r1 for 198.51.100.200
default    idle     198.51.100.201                  default  not announced: no ready endpoints (node3 would answer)             node3 would announce to r1: not announced, no ready endpoints
default    waiting  <pending>                       -        -                                                                  -

L2 SPREAD
NODE   L2 ADDRESSES  SERVICES
node1  1             1
node2  1             1
node3  0             0

BGP SESSIONS
NODE   PEER    ADDRESS       STATE        BFD   SINCE  SENT  RECEIVED  LAST ERROR
node1  router  198.51.100.1  Established  Up    90s    2     0         -
node2  router  198.51.100.1  Active       Down  -      0     0         BFD down (control detection time expired): BGP session closed and held down until BFD is Up again

CONFIGURATION
NODE   COMPONENT  PROBLEM (OBJECT LEFT OUT)
node1  relay      Relay default/calls: spec.dataPath: Kernel cannot be combined with spec.routing.token
node2  speaker    BGPPeer pier-system/r3: spec.peerAddress: "192.0.2.300" is not an IP address
                  IPAddressPool pier-system/p: overlaps

RELAYS
(CRD relays.pier.dev not installed)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestBuildEmpty(t *testing.T) {
	got := Build(Objects{Namespace: "pier-system"})
	want := Status{Namespace: "pier-system", Components: []Component{}, Pools: []Pool{}, Services: []Service{}, L2Spread: []L2Node{}, BGPSessions: []BGPSession{},
		Configuration: []NodeConfiguration{}, Relays: []Relay{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := got.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	wantJSON := "{\n  \"namespace\": \"pier-system\",\n  \"components\": [],\n  \"pools\": [],\n  \"services\": [],\n  \"l2Spread\": [],\n  \"bgpSessions\": [],\n  \"configuration\": [],\n  \"relays\": []\n}\n"
	if diff := cmp.Diff(wantJSON, out.String()); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestConfigurationAllValid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objs    []v1alpha1.ConfigurationStatus
		missing []string
		want    string
	}{
		{"valid", []v1alpha1.ConfigurationStatus{configStatus("node1", "speaker"), configStatus("node2", "speaker")},
			nil, "CONFIGURATION\nevery node took the whole configuration (2 status objects)\n"},
		{"none written", nil, nil, "CONFIGURATION\n(none)\n"},
		{"old CRDs", nil, []string{"configurationstatuses.pier.dev"}, "CONFIGURATION\n(CRD configurationstatuses.pier.dev not installed)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Build(Objects{Namespace: "pier-system", Configurations: tc.objs, Missing: tc.missing}).WriteText(&out, t0); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "\n"+tc.want+"\n") {
				t.Errorf("want the section\n%s\nin\n%s", tc.want, out.String())
			}
		})
	}
}
