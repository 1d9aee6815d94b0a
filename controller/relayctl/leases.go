package relayctl

import (
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// leaseWatch tells which relay Leases are live from the renewals this
// controller observed, timed on its own monotonic clock: a Lease is live
// until its leaseDurationSeconds have passed since the controller last saw
// its renewTime change. The relay's renewTime is its node's clock, which
// may be off by any amount; only a Lease seen for the first time (after a
// controller start) is judged by it, and only until its next renewal.
type leaseWatch struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	seen map[types.NamespacedName]map[types.NamespacedName]sighting // by Relay, by Lease
}

// sighting is the last renewal seen of a Lease: its renewTime and holder,
// and when (controller clock) it was seen, zero when never live.
type sighting struct {
	renewal string
	at      time.Time
}

func newLeaseWatch(clk clock.PassiveClock) *leaseWatch {
	return &leaseWatch{clock: clk, seen: map[types.NamespacedName]map[types.NamespacedName]sighting{}}
}

// live returns the holders (or names) of relay's live Leases, sorted, and
// the time until the first of them expires (0 when none lives), margin
// included.
func (w *leaseWatch) live(relay types.NamespacedName, leases []coordinationv1.Lease) ([]string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	prev, next := w.seen[relay], map[types.NamespacedName]sighting{}
	var (
		live []string
		soon time.Duration
	)
	for _, l := range leases {
		if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		key := types.NamespacedName{Namespace: l.Namespace, Name: l.Name}
		s := w.sight(prev, key, &l, now)
		next[key] = s
		left := time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second - w.clock.Since(s.at)
		if s.at.IsZero() || left <= 0 {
			continue
		}
		live = append(live, holderOf(&l))
		if soon == 0 || left < soon {
			soon = left
		}
	}
	w.seen[relay] = next
	slices.Sort(live)
	if soon > 0 {
		soon += expiryMargin
	}
	return slices.Compact(live), soon
}

// sight is the sighting of a Lease now: the previous one while its renewal
// is unchanged, now when it changed. A Lease seen for the first time is
// taken to have been renewed when its renewTime says, at most now.
func (w *leaseWatch) sight(prev map[types.NamespacedName]sighting, key types.NamespacedName, l *coordinationv1.Lease, now time.Time) sighting {
	renewal := l.Spec.RenewTime.UTC().Format(time.RFC3339Nano) + " " + holderOf(l)
	old, known := prev[key]
	switch {
	case known && old.renewal == renewal:
		return old
	case known:
		return sighting{renewal: renewal, at: now}
	}
	age := max(now.Sub(l.Spec.RenewTime.Time), 0)
	if age >= time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
		return sighting{renewal: renewal} // expired by its own clock: live once renewed
	}
	return sighting{renewal: renewal, at: now.Add(-age)}
}

// forget drops what was seen of a Relay's Leases (the Relay is gone).
func (w *leaseWatch) forget(relay types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.seen, relay)
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
		return *l.Spec.HolderIdentity
	}
	return l.Name
}
