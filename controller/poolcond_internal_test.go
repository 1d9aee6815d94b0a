package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

func TestValidConditions(t *testing.T) {
	pool := func(name string, addrs ...string) v1alpha1.IPAddressPool {
		return v1alpha1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Namespace: "pier-system", Name: name, UID: types.UID("uid-" + name), Generation: 3},
			Spec:       v1alpha1.IPAddressPoolSpec{Addresses: addrs},
		}
	}
	pools := []v1alpha1.IPAddressPool{
		pool("a", "198.51.100.0/28"),
		pool("b", "198.51.100.8/29"),
		pool("c", "203.0.113.0/30", "198.51.100.300/24"),
		pool("d", "203.0.113.64/30"),
	}
	_, perr := config.Parse(config.Objects{Pools: pools})
	cond := func(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: CondValid, Status: status, Reason: reason, Message: msg, ObservedGeneration: 3}
	}
	overlap := `spec.addresses[0]: "198.51.100.8/29" overlaps IPAddressPool pier-system/a spec.addresses[0] ("198.51.100.0/28")`
	want := map[string]poolCond{
		"a": {"uid-a", cond(metav1.ConditionTrue, ReasonAccepted, "valid and applied; another pool is left out: IPAddressPool pier-system/b: "+overlap)},
		"b": {"uid-b", cond(metav1.ConditionFalse, ReasonInvalid, overlap)},
		"c": {"uid-c", cond(metav1.ConditionFalse, ReasonInvalid, `spec.addresses[1]: "198.51.100.300/24" is not a CIDR or range`)},
		"d": {"uid-d", cond(metav1.ConditionTrue, ReasonAccepted, "valid and applied")},
	}
	if diff := cmp.Diff(want, validConditions(pools, perr), cmp.AllowUnexported(poolCond{})); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func TestJoinBoundedStaysWithinTheLimit(t *testing.T) {
	var msgs []string
	for i := range 256 {
		msgs = append(msgs, fmt.Sprintf("spec.addresses[%d]: %q is not a CIDR or range", i, strings.Repeat("x", 100)))
	}
	got := joinBounded(msgs)
	if len(got) > maxConditionMessage {
		t.Errorf("message has %d bytes, limit %d", len(got), maxConditionMessage)
	}
	if !strings.HasPrefix(got, msgs[0]+"; "+msgs[1]) || !strings.HasSuffix(got, " more") {
		t.Errorf("message %q...%q does not start with the first faults and count the rest", got[:80], got[len(got)-20:])
	}
	if got := joinBounded(msgs[:2]); got != msgs[0]+"; "+msgs[1] {
		t.Errorf("two faults joined as %q", got)
	}
}
