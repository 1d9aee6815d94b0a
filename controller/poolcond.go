package controller

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// The Valid condition of an IPAddressPool and its reasons.
const (
	CondValid      = "Valid"
	ReasonAccepted = "Accepted" // the pool is applied: Services get addresses from it
	ReasonInvalid  = "Invalid"  // config.Parse left the pool out; the message says why
)

// maxConditionMessage bounds a condition's message (the API allows 32 KiB;
// a pool lists up to 256 entries, each of which may be at fault).
const maxConditionMessage = 4096

// poolCond is the Valid condition a pool should show (LastTransitionTime
// is set when it is written), for the pool object with uid.
type poolCond struct {
	uid  types.UID
	cond metav1.Condition
}

// validConditions turns what config.Parse returned for pools into each
// pool's Valid condition: False with the pool's own faults (field and
// message as Parse words them), True otherwise. A valid pool that is a
// party to another pool's fault (the earlier pool of an overlap) is
// applied; its message names the pool left out.
func validConditions(pools []v1alpha1.IPAddressPool, perr error) map[string]poolCond {
	out := make(map[string]poolCond, len(pools))
	for i := range pools {
		p := &pools[i]
		var own, related []string
		for _, e := range config.ForObject(perr, config.KindIPAddressPool, p.Namespace, p.Name) {
			if e.Kind == config.KindIPAddressPool && e.Namespace == p.Namespace && e.Name == p.Name {
				own = append(own, fault(e))
			} else {
				related = append(related, e.Error())
			}
		}
		c := metav1.Condition{Type: CondValid, Status: metav1.ConditionTrue, Reason: ReasonAccepted,
			Message: "valid and applied", ObservedGeneration: p.Generation}
		switch {
		case len(own) > 0:
			c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalid
			c.Message = joinBounded(own)
		case len(related) > 0:
			c.Message = "valid and applied; another pool is left out: " + joinBounded(related)
		}
		out[p.Name] = poolCond{uid: p.UID, cond: c}
	}
	return out
}

// fault words one of a pool's own errors without the pool's name, which
// the condition's object already gives: "spec.addresses[1]: ...".
func fault(e *config.Error) string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// joinBounded joins msgs with "; ", keeping the result within
// maxConditionMessage by counting the ones left off.
func joinBounded(msgs []string) string {
	const tail = "; and 999 more"
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 && b.Len()+len("; ")+len(m)+len(tail) > maxConditionMessage {
			fmt.Fprintf(&b, "; and %d more", len(msgs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(m)
	}
	return b.String()
}
