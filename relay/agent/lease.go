package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// leases keeps one Lease per served Relay: renewed every interval while the
// Relay is served, deleted when it no longer is.
type leases struct {
	client   coordclient.LeaseInterface
	node     string
	duration time.Duration
	interval time.Duration
	timeout  time.Duration // per API request
	clock    clock.WithTicker
	log      *slog.Logger
	metrics  *metrics

	mu      sync.Mutex
	served  map[Key]bool
	renewed map[Key]time.Time // last successful write
	changed chan struct{}
}

func newLeases(c coordclient.LeaseInterface, node string, duration, interval time.Duration, clk clock.WithTicker, log *slog.Logger, m *metrics) *leases {
	return &leases{
		client: c, node: node, duration: duration, interval: interval, timeout: 5 * time.Second,
		clock: clk, log: log, metrics: m,
		served: map[Key]bool{}, renewed: map[Key]time.Time{}, changed: make(chan struct{}, 1),
	}
}

// Set says which Relays are served now.
func (l *leases) Set(keys []Key) {
	l.mu.Lock()
	next := make(map[Key]bool, len(keys))
	diff := len(keys) != len(l.served)
	for _, k := range keys {
		next[k] = true
		diff = diff || !l.served[k]
	}
	l.served = next
	l.mu.Unlock()
	if diff {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// Run writes the Leases until ctx ends, then deletes every Lease it holds.
func (l *leases) Run(ctx context.Context) error {
	t := l.clock.NewTicker(min(l.interval, time.Second))
	defer t.Stop()
	for {
		l.sync(ctx)
		select {
		case <-ctx.Done():
			l.release()
			return nil
		case <-t.C():
		case <-l.changed:
		}
	}
}

// sync renews the Leases that are due and deletes those no longer served.
func (l *leases) sync(ctx context.Context) {
	l.mu.Lock()
	var renew, drop []Key
	now := l.clock.Now()
	for k := range l.served {
		if last, ok := l.renewed[k]; !ok || now.Sub(last) >= l.interval {
			renew = append(renew, k)
		}
	}
	for k := range l.renewed {
		if !l.served[k] {
			drop = append(drop, k)
		}
	}
	l.mu.Unlock()
	for _, k := range renew {
		err := l.renew(ctx, k)
		l.metrics.leaseWrites.WithLabelValues(result(err)).Inc()
		if err != nil {
			l.log.Warn("renew lease", "relay", k.String(), "err", err)
			continue
		}
		l.mu.Lock()
		l.renewed[k] = now
		l.mu.Unlock()
	}
	for _, k := range drop {
		if err := l.delete(ctx, k); err != nil {
			l.log.Warn("delete lease", "relay", k.String(), "err", err)
			continue
		}
		l.mu.Lock()
		delete(l.renewed, k)
		l.mu.Unlock()
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// release deletes every Lease held, shortly: the process is stopping.
func (l *leases) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l.mu.Lock()
	keys := make([]Key, 0, len(l.renewed))
	for k := range l.renewed {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	for _, k := range keys {
		if err := l.delete(ctx, k); err != nil {
			l.log.Warn("delete lease", "relay", k.String(), "err", err)
		}
	}
}

func (l *leases) name(k Key) string { return v1alpha1.RelayLeaseName(k.Namespace, k.Name, l.node) }

// renew creates the Lease or moves its renew time.
func (l *leases) renew(ctx context.Context, k Key) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	now := metav1.NewMicroTime(l.clock.Now())
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(l.node),
		LeaseDurationSeconds: ptr.To(int32(l.duration / time.Second)),
		RenewTime:            &now,
	}
	lease, err := l.client.Get(ctx, l.name(k), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		spec.AcquireTime = &now
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.name(k), Labels: map[string]string{
				v1alpha1.LabelRelayNamespace: k.Namespace, v1alpha1.LabelRelayName: k.Name,
			}},
			Spec: spec,
		}
		_, err = l.client.Create(ctx, lease, metav1.CreateOptions{})
		return wrapLease("create", lease.Name, err)
	}
	if err != nil {
		return wrapLease("get", l.name(k), err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != l.node {
		spec.AcquireTime = &now
	} else {
		spec.AcquireTime = lease.Spec.AcquireTime
	}
	lease.Spec = spec
	_, err = l.client.Update(ctx, lease, metav1.UpdateOptions{})
	return wrapLease("update", lease.Name, err)
}

func (l *leases) delete(ctx context.Context, k Key) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	err := l.client.Delete(ctx, l.name(k), metav1.DeleteOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsForbidden(err):
		return l.expire(ctx, k) // RBAC without delete: leave it expired
	}
	return wrapLease("delete", l.name(k), err)
}

// expire moves the Lease's renew time back past its duration, so it no
// longer counts as a serving relay.
func (l *leases) expire(ctx context.Context, k Key) error {
	lease, err := l.client.Get(ctx, l.name(k), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return wrapLease("get", l.name(k), err)
	}
	past := metav1.NewMicroTime(l.clock.Now().Add(-2 * l.duration))
	lease.Spec.RenewTime = &past
	_, err = l.client.Update(ctx, lease, metav1.UpdateOptions{})
	return wrapLease("expire", lease.Name, err)
}

func wrapLease(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s lease %s: %w", op, name, err)
}
