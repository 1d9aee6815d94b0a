package members

import (
	"net/netip"
	"strings"
	"testing"
)

var newKey = []byte("pier-new-key-32-bytes-for-rotate")

// TestKeyRotation: a key is rotated by rolling the speakers through three
// Secrets (key=old,key-next=new; key=new,key-previous=old; key=new). At
// every step a restarted speaker and one not yet restarted must form one
// cluster: each accepts the key the other encrypts with.
func TestKeyRotation(t *testing.T) {
	keys := func(primary []byte, others ...[]byte) func(*Options) {
		return func(o *Options) { o.SecretKey, o.SecondaryKeys = primary, others }
	}
	steps := []struct {
		name             string
		restarted, older func(*Options)
	}{
		{"old+new beside old", keys(testKey, newKey), keys(testKey)},
		{"new+old beside old+new", keys(newKey, testKey), keys(testKey, newKey)},
		{"new beside new+old", keys(newKey), keys(newKey, testKey)},
	}
	for _, s := range steps {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			l := newTestLab(t, 2)
			ms := []*running{l.start(0, s.restarted), l.start(1, s.older)}
			waitLive(t, converge, l.names(0, 1), ms...)
		})
	}
}

func TestSecondaryKeysValidated(t *testing.T) {
	o := Options{Name: "node1", BindAddr: netip.MustParseAddr("192.0.2.10"), SecretKey: testKey,
		SecondaryKeys: [][]byte{[]byte("short")}}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "secondary key") {
		t.Errorf("New with a 5 byte secondary key: %v, want a secondary key error", err)
	}
	o.SecretKey, o.Insecure = nil, true
	o.SecondaryKeys = [][]byte{newKey}
	if _, err := New(o); err == nil {
		t.Error("New with secondary keys and no key: no error")
	}
}
