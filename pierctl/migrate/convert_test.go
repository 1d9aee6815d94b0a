package migrate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func decodeString(t *testing.T, s string) Result {
	t.Helper()
	in, err := Decode(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return Convert(in, Options{Namespace: "lb", MetalLBNamespace: "metallb"})
}

func TestConvertCases(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		findings []string
		check    func(t *testing.T, r Result)
	}{{
		name: "password and passwordSecret: the Secret wins",
		in: `{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p"},
			"spec":{"myASN":1,"peerASN":2,"peerAddress":"198.51.100.1","password":"x","passwordSecret":{"name":"s"}}}`,
		findings: []string{
			"BGPPeer metallb/p: spec.password: set together with spec.passwordSecret (MetalLB refuses both); the Secret is used, the password dropped",
			`note: BGPPeer metallb/p: spec.passwordSecret: Pier reads Secret pier-bgp-passwords/s, key "password": copy Secret metallb/s there`,
		},
		check: func(t *testing.T, r Result) {
			if len(r.Secrets) != 0 || r.Objects.BGPPeers[0].Spec.PasswordSecret.Name != "s" {
				t.Errorf("secrets %v, peer %+v", r.Secrets, r.Objects.BGPPeers[0].Spec)
			}
		},
	}, {
		name:     "unreadable spec",
		in:       `{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p"},"spec":{"myASN":"one"}}`,
		findings: []string{"BGPPeer metallb/p: spec: cannot read: json: cannot unmarshal string into Go struct field mlPeerSpec.myASN of type int64; not converted"},
		check: func(t *testing.T, r Result) {
			if len(r.Objects.BGPPeers) != 0 {
				t.Errorf("peer converted: %+v", r.Objects.BGPPeers)
			}
		},
	}, {
		name: "no serviceAllocation anywhere: priorities untouched",
		in: `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [198.51.100.0/28]}
---
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b, namespace: metallb}
spec: {addresses: [198.51.100.16/28]}
`,
		check: func(t *testing.T, r Result) {
			for _, p := range r.Objects.Pools {
				if p.Spec.ServiceAllocation != nil || p.Namespace != "lb" {
					t.Errorf("pool %s: %+v in %s", p.Name, p.Spec.ServiceAllocation, p.Namespace)
				}
			}
		},
	}, {
		name: "same name twice (two API versions)",
		in: `{"apiVersion":"metallb.io/v1beta1","kind":"BGPPeer","metadata":{"name":"p"},"spec":{"myASN":1,"peerASN":2,"peerAddress":"198.51.100.1"}}
{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p"},"spec":{"myASN":1,"peerASN":2,"peerAddress":"198.51.100.1"}}`,
		findings: []string{"BGPPeer metallb/p: metadata.name: a second BGPPeer of this name (another API version?); not converted"},
	}, {
		name: "peer port out of range, dynamic ASN with a peer ASN",
		in: `{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p"},
			"spec":{"myASN":1,"peerASN":2,"dynamicASN":"external","peerAddress":"198.51.100.1","peerPort":70000}}`,
		findings: []string{
			"BGPPeer metallb/p: spec.peerPort: 70000 is not a port, dropped (Pier uses 179)",
			`BGPPeer metallb/p: spec.dynamicASN: "external" next to peerASN 2, dropped (the session expects spec.peerASN)`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeString(t, tc.in)
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.String())
			}
			if diff := cmp.Diff(tc.findings, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			wantDropped := false
			for _, f := range got {
				wantDropped = wantDropped || !strings.HasPrefix(f, "note: ")
			}
			if r.Dropped() != wantDropped {
				t.Errorf("Dropped() = %v, want %v", r.Dropped(), wantDropped)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{"kind: [", "apiVersion: v1\nmetadata: {name: x}\n"} {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
}
