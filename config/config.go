package config

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// Objects are the raw Pier objects as listed from the API server (one
// namespace). Parse does not modify them.
type Objects struct {
	Pools             []v1alpha1.IPAddressPool
	L2Advertisements  []v1alpha1.L2Advertisement
	BGPPeers          []v1alpha1.BGPPeer
	BGPAdvertisements []v1alpha1.BGPAdvertisement
	// PasswordNamespace is the namespace of BGP password Secrets, the only
	// one where the speakers may read Secrets: a BGPPeer's passwordSecret
	// is there, and naming another namespace is an error. Empty:
	// DefaultPasswordNamespace.
	PasswordNamespace string
}

// Config is the validated configuration. Every list is sorted by
// namespace, then name; pool and peer references are resolved to names
// that exist.
type Config struct {
	// Pools is ready for allocator.New or Allocator.SetPools.
	Pools []allocator.Pool
	// PoolLabels maps a pool name to its labels (never nil; pools without
	// labels map to an empty map).
	PoolLabels        map[string]map[string]string
	L2Advertisements  []L2Advertisement
	BGPPeers          []BGPPeer
	BGPAdvertisements []BGPAdvertisement
}

// Parse validates objs and returns the configuration of everything valid,
// never nil, and an error joining one *Error per problem (see [Errors],
// [ForObject]), nil when there is none. An object with a fault is left out
// of the Config whole (a pool, a peer, an advertisement with a bad selector
// or interface: leaving out only the bad part would widen what it selects),
// except a reference from an advertisement to a pool or peer that does not
// exist: only that reference is dropped, so an advertisement of pools a and
// b keeps announcing a when b is deleted. The caller reports the errors and
// applies the Config. Parse is pure and deterministic: it sorts its input
// by namespace and name, so the order of objs does not matter.
func Parse(objs Objects) (*Config, error) {
	p := &parser{
		cfg:        &Config{PoolLabels: map[string]map[string]string{}},
		entries:    map[string][]entry{},
		peers:      map[string]Ref{},
		passwordNS: cmp.Or(objs.PasswordNamespace, DefaultPasswordNamespace),
	}
	p.parsePools(sortedObjects(objs.Pools))
	for _, o := range sortedObjects(objs.L2Advertisements) {
		p.parseL2(o)
	}
	p.parsePeers(sortedObjects(objs.BGPPeers))
	for _, o := range sortedObjects(objs.BGPAdvertisements) {
		p.parseBGPAdv(o)
	}
	if len(p.errs) > 0 {
		return p.cfg, joinErrors(p.errs)
	}
	return p.cfg, nil
}

// parser collects the config and the errors of one Parse call.
type parser struct {
	cfg  *Config
	errs []*Error
	// poolRefs holds every pool object by name, valid or not, so that a
	// reference to an invalid pool is not also reported as missing.
	poolRefs map[string]Ref
	// entries holds the valid address entries of each pool.
	entries map[string][]entry
	// peers holds every BGPPeer object by name, valid or not.
	peers map[string]Ref
	// passwordNS is the namespace of BGP password Secrets.
	passwordNS string
	// dangling counts the errors that are references to objects that do
	// not exist: they drop the reference, not the object.
	dangling int
}

// fail records a problem of object r at field.
func (p *parser) fail(r Ref, field, format string, args ...any) *Error {
	e := &Error{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Field: field, Message: fmt.Sprintf(format, args...)}
	p.errs = append(p.errs, e)
	return e
}

// failed reports whether p recorded errors since it had n of them.
func (p *parser) failed(n int) bool { return len(p.errs) > n }

// mark is the error counts at the start of one object.
type mark struct{ errs, dangling int }

func (p *parser) mark() mark { return mark{len(p.errs), p.dangling} }

// faulty reports whether the object begun at m has errors other than
// dangling references.
func (p *parser) faulty(m mark) bool { return len(p.errs)-m.errs > p.dangling-m.dangling }

// checkName refuses an object without a name.
func (p *parser) checkName(r Ref) bool {
	if r.Name == "" {
		p.fail(r, "metadata.name", "must not be empty")
		return false
	}
	return true
}

// sortedObjects returns pointers to the objects in in, sorted by
// namespace, then name; the sort is stable and in is not modified.
func sortedObjects[T any, P interface {
	*T
	GetNamespace() string
	GetName() string
}](in []T) []P {
	out := make([]P, len(in))
	for i := range in {
		out[i] = &in[i]
	}
	slices.SortStableFunc(out, func(a, b P) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// field formats an indexed field path, e.g. spec.addresses[1].
func field(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
