package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/speaker/bgp"
)

// RunBGPStatus keeps one BGPSessionStatus per BGPPeer of this node up to
// date until ctx ends: after every session change and every five
// StatusEvery (for the prefix counts), at most once per StatusEvery;
// objects that did not change are not written. It runs apart
// from the announcing loop, so a slow or unreachable API server never
// delays an announcement.
func (s *Speaker) RunBGPStatus(ctx context.Context) error {
	if s.opts.BGP == nil || s.opts.Writer == nil {
		return nil
	}
	failing := false
	for {
		changes := s.opts.BGP.Changes()
		if s.opts.Synced() {
			err := s.writeBGPStatus(ctx)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				s.log.Warn("bgp session status not written; retrying", "err", err)
			case err == nil && failing:
				s.log.Info("bgp session status written again")
			}
			failing = err != nil
		}
		select { // at most one round per StatusEvery
		case <-ctx.Done():
			return nil
		case <-s.opts.Clock.After(s.opts.StatusEvery):
		}
		select { // then on a session change, or to refresh the counts
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-s.opts.Clock.After(5 * s.opts.StatusEvery):
		}
	}
}

// BGPSessionStatuses is what this node reports about its sessions, by
// object name: one per BGPPeer that applies to the node, waiting ones
// included. Pure.
func BGPSessionStatuses(node string, plan BGPDesired, sessions []bgp.PeerStatus) map[string]v1alpha1.BGPSessionStatusStatus {
	out := map[string]v1alpha1.BGPSessionStatusStatus{}
	for _, p := range plan.Peers {
		st := v1alpha1.BGPSessionStatusStatus{Node: node, Peer: p.Name, PeerAddress: p.Address.String(), State: "Idle"}
		for _, ss := range sessions {
			if ss.Name != p.Name {
				continue
			}
			st.State, st.LastError, st.BFDState = ss.State, ss.LastError, ss.BFDState
			st.PeerASN = int64(ss.PeerASN)
			st.PrefixesSent, st.PrefixesReceived = clampInt32(ss.PrefixesSent), clampInt32(ss.PrefixesReceived)
			if !ss.Since.IsZero() {
				st.Since = &metav1.Time{Time: ss.Since.Truncate(time.Second)}
			}
		}
		out[BGPSessionStatusName(p.Name, node)] = st
	}
	for name, why := range plan.Waiting {
		out[BGPSessionStatusName(name, node)] = v1alpha1.BGPSessionStatusStatus{Node: node, Peer: name, State: "Idle", LastError: why}
	}
	return out
}

func clampInt32(n uint64) int32 { return int32(min(n, math.MaxInt32)) }

// BGPSessionStatusName is the object name for a peer and a node: readable
// when short, ending in a hash when long.
func BGPSessionStatusName(peer, node string) string {
	name := peer + "-" + node
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(peer + "/" + node))
	return name[:50] + "-" + hex.EncodeToString(sum[:6])
}

// writeBGPStatus writes what changed since the last successful round and
// deletes this node's objects for peers that no longer apply to it.
func (s *Speaker) writeBGPStatus(ctx context.Context) error {
	s.bgpMu.Lock()
	plan := s.bgpView
	wrote := s.bgpWrote
	s.bgpMu.Unlock()
	want := BGPSessionStatuses(s.opts.NodeName, plan, s.opts.BGP.Status())
	if wrote != nil && maps.EqualFunc(want, wrote, equalSession) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var have v1alpha1.BGPSessionStatusList
	if err := s.opts.Writer.List(ctx, &have, client.InNamespace(s.opts.Namespace),
		client.MatchingLabels{v1alpha1.LabelNode: s.opts.NodeName}); err != nil {
		return err
	}
	byName := map[string]*v1alpha1.BGPSessionStatus{}
	for i := range have.Items {
		obj := &have.Items[i]
		if _, ok := want[obj.Name]; !ok {
			if err := client.IgnoreNotFound(s.opts.Writer.Delete(ctx, obj)); err != nil {
				return fmt.Errorf("delete bgp session status %s: %w", obj.Name, err)
			}
			continue
		}
		byName[obj.Name] = obj
	}
	for name, st := range want {
		if err := s.applySession(ctx, name, byName[name], st); err != nil {
			return err
		}
	}
	s.bgpMu.Lock()
	s.bgpWrote = want
	s.bgpMu.Unlock()
	return nil
}

func (s *Speaker) applySession(ctx context.Context, name string, obj *v1alpha1.BGPSessionStatus, st v1alpha1.BGPSessionStatusStatus) error {
	if obj == nil {
		obj = &v1alpha1.BGPSessionStatus{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: s.opts.Namespace,
			Labels: map[string]string{v1alpha1.LabelNode: s.opts.NodeName, v1alpha1.LabelBGPPeer: st.Peer},
		}}
		err := s.opts.Writer.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			err = s.opts.Writer.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		}
		if err != nil {
			return fmt.Errorf("create bgp session status %s: %w", name, err)
		}
	}
	if equalSession(obj.Status, st) {
		return nil
	}
	obj.Status = st
	if err := s.opts.Writer.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("bgp session status %s: %w", name, err)
	}
	return nil
}

func equalSession(a, b v1alpha1.BGPSessionStatusStatus) bool {
	sameSince := (a.Since == nil) == (b.Since == nil) && (a.Since == nil || a.Since.Equal(b.Since))
	a.Since, b.Since = nil, nil
	return sameSince && a == b
}
