package config

import (
	"cmp"
	"errors"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the objects Parse reads, as they appear in [Error.Kind].
const (
	KindIPAddressPool    = "IPAddressPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPPeer          = "BGPPeer"
	KindBGPAdvertisement = "BGPAdvertisement"
)

// ErrInvalid matches every *Error with errors.Is.
var ErrInvalid = errors.New("invalid Pier configuration")

// Ref names one object.
type Ref struct{ Kind, Namespace, Name string }

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func refOf(kind string, m *metav1.ObjectMeta) Ref {
	return Ref{Kind: kind, Namespace: m.Namespace, Name: m.Name}
}

// Error is one problem in one object, e.g.
//
//	IPAddressPool pier-system/pool-a: spec.addresses[1]: "198.51.100.300/24" is not a CIDR or range
//
// Related lists the other objects a cross-object problem involves: the
// other pool of an overlap, the pool or peer a reference names (even when
// it does not exist), the earlier of two duplicates.
type Error struct {
	Kind, Namespace, Name string
	Field                 string // e.g. "spec.communities[2]"; empty for the whole object
	Message               string
	Related               []Ref
}

func (e *Error) Error() string {
	s := e.ref().String() + ": "
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Message
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func (e *Error) ref() Ref { return Ref{e.Kind, e.Namespace, e.Name} }

// Concerns reports whether the object is the one at fault or one of the
// related parties.
func (e *Error) Concerns(kind, namespace, name string) bool {
	r := Ref{kind, namespace, name}
	return e.ref() == r || slices.Contains(e.Related, r)
}

// Errors extracts the *Error values from an error returned by Parse, in
// order. It returns nil for nil.
func Errors(err error) []*Error {
	var out []*Error
	collect(err, &out)
	return out
}

func collect(err error, out *[]*Error) {
	if e, ok := err.(*Error); ok {
		*out = append(*out, e)
		return
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range u.Unwrap() {
			collect(x, out)
		}
	case interface{ Unwrap() error }:
		collect(u.Unwrap(), out)
	}
}

// ForObject returns the errors that concern one object: its own faults and
// the cross-object problems it is a party to (an overlap with another pool,
// a reference to it from an advertisement when it does not exist). The
// webhook refuses an object for these only, not for the pre-existing
// faults of others.
func ForObject(err error, kind, namespace, name string) []*Error {
	var out []*Error
	for _, e := range Errors(err) {
		if e.Concerns(kind, namespace, name) {
			out = append(out, e)
		}
	}
	return out
}

// kindOrder sorts errors pools first, as Parse reads the kinds.
var kindOrder = map[string]int{KindIPAddressPool: 0, KindL2Advertisement: 1, KindBGPPeer: 2, KindBGPAdvertisement: 3}

// joinErrors sorts errs by object, stable within an object, and joins them.
func joinErrors(errs []*Error) error {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return errors.Join(joined...)
}
