package allocator

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// step is one call in a table test: Assign (req set) or Release (release
// set). want lists "addr pool" strings; err is the sentinel expected; msg,
// if set, must appear in the error text.
type step struct {
	req     *Request
	release string
	want    []string
	err     error
	msg     string
}

func key(s string) ServiceKey {
	ns, name, _ := strings.Cut(s, "/")
	return ServiceKey{ns, name}
}

func newAlloc(t *testing.T, pools ...Pool) *Allocator {
	t.Helper()
	a, err := New(Options{Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func show(as []Assignment) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %s", a.Addr, a.Pool))
	}
	return out
}

func runSteps(t *testing.T, a *Allocator, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.req == nil {
			a.Release(key(s.release))
			continue
		}
		got, err := a.Assign(*s.req)
		if !errors.Is(err, s.err) || s.err == nil && err != nil {
			t.Fatalf("step %d: Assign(%s) error = %v, want %v", i, s.req.Service, err, s.err)
		}
		if s.msg != "" && (err == nil || !strings.Contains(err.Error(), s.msg)) {
			t.Errorf("step %d: error %v does not mention %q", i, err, s.msg)
		}
		if diff := cmp.Diff(s.want, show(got)); diff != "" {
			t.Errorf("step %d: Assign(%s) (-want +got):\n%s", i, s.req.Service, diff)
		}
		if err := a.check(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

// r builds a Request for "ns/name" and applies edits.
func r(svc string, edits ...func(*Request)) *Request {
	req := &Request{Service: key(svc)}
	for _, e := range edits {
		e(req)
	}
	return req
}

func fams(f ...Family) func(*Request) { return func(r *Request) { r.Families = f } }
func policy(p FamilyPolicy) func(*Request) {
	return func(r *Request) { r.Policy = p }
}
func ips(s ...string) func(*Request) { return func(r *Request) { r.Addrs = addrs(s...) } }
func pool(p string) func(*Request)   { return func(r *Request) { r.Pool = p } }
func share(k string, ports ...Port) func(*Request) {
	return func(r *Request) { r.SharingKey, r.Ports = k, ports }
}
func svcLabels(kv ...string) func(*Request) {
	return func(r *Request) { r.ServiceLabels = labels(kv...) }
}
func nsLabels(kv ...string) func(*Request) {
	return func(r *Request) { r.NamespaceLabels = labels(kv...) }
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
