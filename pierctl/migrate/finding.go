package migrate

import "fmt"

// Level says whether a finding lost something.
type Level int

const (
	// Dropped: a field or object could not be carried over.
	Dropped Level = iota
	// Note: carried over, but the user must know or do something (a
	// password written to a Secret, a priority renumbered).
	Note
)

// Finding is one report line about one object and field.
type Finding struct {
	Level     Level
	Kind      string
	Namespace string
	Name      string
	Field     string // empty for the whole object
	Message   string
}

// String formats the finding the way pierctl prints it, e.g.
//
//	BGPPeer metallb-system/peer1: spec.bfdProfile: not supported, dropped
//	note: BGPPeer metallb-system/peer1: spec.password: ...
func (f Finding) String() string {
	s := f.Kind + " "
	if f.Namespace != "" {
		s += f.Namespace + "/"
	}
	s += f.Name + ": "
	if f.Field != "" {
		s += f.Field + ": "
	}
	s += f.Message
	if f.Level == Note {
		s = "note: " + s
	}
	return s
}

// reporter collects the findings of one object.
type reporter struct {
	kind, namespace, name string
	out                   *[]Finding
}

func (r reporter) drop(field, format string, args ...any) {
	r.add(Dropped, field, format, args...)
}

func (r reporter) note(field, format string, args ...any) {
	r.add(Note, field, format, args...)
}

func (r reporter) add(l Level, field, format string, args ...any) {
	*r.out = append(*r.out, Finding{Level: l, Kind: r.kind, Namespace: r.namespace, Name: r.name,
		Field: field, Message: fmt.Sprintf(format, args...)})
}
