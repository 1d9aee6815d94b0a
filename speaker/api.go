package speaker

import (
	"context"
	"net/netip"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// EventRecorder records events about objects (client-go's events API).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// refreshTargets reads the whole API view again and recomputes the
// targets and the BGP plan, Service by Service (apiView, which later
// changes of single Services start from), and saves them with the peers
// when they changed. Objects at fault are left out of the configuration
// (Parse) and reported; everything valid is applied.
func (s *Speaker) refreshTargets(ctx context.Context) error {
	in, objs, err := s.readAPI(ctx)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(objs)
	s.reportConfig(err)
	in.Config = cfg
	d, n, names := bgpSessions(in, s.opts.NodeName, s.passwords)
	v := newAPIView(in, n, names)
	lastT, lastS := byService(s.targets), byService(s.bgp.Sources)
	ready := readyEndpoints(in.EndpointSlices)
	var targets []Target
	var sources []BGPSource
	for i := range in.Services {
		svc := &in.Services[i]
		key := svc.Namespace + "/" + svc.Name
		t, src := v.plan(svc, ready, lastT[key], lastS[key])
		v.set(key, t, src)
		targets, sources = append(targets, t...), append(sources, src...)
	}
	slices.SortFunc(targets, compareTargets)
	if n != nil && eligible(n) {
		slices.SortFunc(sources, compareSources)
		d.Paths, d.Addrs = mergeSources(sources)
		d.Sources = sources
	}
	s.view = v
	s.setBGP(d)
	s.targets, s.planValid = targets, false
	s.gen++
	s.peers = peerAddrs(in.Nodes, s.opts.NodeName, s.opts.GossipAddr.Is4())
	if err := s.opts.Members.SetPeers(s.peers); err != nil {
		s.log.Warn("memberlist peers", "err", err)
	}
	disk := s.bgp.forDisk()
	if st := (state{Targets: s.targets, Peers: s.peers, BGP: &disk}); !reflect.DeepEqual(st, s.saved) {
		s.unsaved = &st
	}
	return nil
}

// reportConfig logs the objects Parse left out, once per change, counts
// them by kind, and hands the result to the ConfigurationStatus writer.
func (s *Speaker) reportConfig(err error) {
	if s.opts.ConfigStatus != nil {
		s.opts.ConfigStatus.Set(err) // it writes on change only
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == s.configErr {
		return
	}
	s.configErr = msg
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, e := range config.Errors(err) {
		s.log.Warn("configuration object left out, the rest applies",
			"kind", e.Kind, "name", e.Namespace+"/"+e.Name, "field", e.Field, "err", e.Message)
		if key := e.Kind + "/" + e.Namespace + "/" + e.Name; !seen[key] {
			seen[key] = true
			counts[e.Kind]++
		}
	}
	if err != nil && len(counts) == 0 { // not a config.Error: count it somewhere
		s.log.Warn("configuration", "err", err)
	}
	s.invalid = counts
	s.opts.Metrics.setInvalid(counts)
}

func (s *Speaker) readAPI(ctx context.Context) (Inputs, config.Objects, error) {
	in := Inputs{OnlyOwnClass: s.opts.OnlyOwnClass}
	var objs config.Objects
	var (
		svcs    corev1.ServiceList
		slices  discoveryv1.EndpointSliceList
		nodes   corev1.NodeList
		pools   v1alpha1.IPAddressPoolList
		advs    v1alpha1.L2AdvertisementList
		peers   v1alpha1.BGPPeerList
		bgpAdvs v1alpha1.BGPAdvertisementList
		secrets corev1.SecretList
	)
	ns := client.InNamespace(s.opts.Namespace)
	pwNS := client.InNamespace(s.opts.PasswordNamespace)
	// The kinds that grow with the cluster are read as cached, not copied:
	// Targets, BGPPlan and peerAddrs only read them, and keep nothing of
	// them but strings and addresses.
	shared := []client.ListOption{client.UnsafeDisableDeepCopy}
	for _, l := range []struct {
		list client.ObjectList
		opts []client.ListOption
	}{{&svcs, shared}, {&slices, shared}, {&nodes, shared}, {&pools, []client.ListOption{ns}}, {&advs, []client.ListOption{ns}},
		{&peers, []client.ListOption{ns}}, {&bgpAdvs, []client.ListOption{ns}}, {&secrets, []client.ListOption{pwNS}}} {
		if err := s.opts.Reader.List(ctx, l.list, l.opts...); err != nil {
			return in, objs, err
		}
	}
	in.Services, in.EndpointSlices, in.Nodes = svcs.Items, slices.Items, nodes.Items
	objs.Pools, objs.L2Advertisements = pools.Items, advs.Items
	objs.BGPPeers, objs.BGPAdvertisements = peers.Items, bgpAdvs.Items
	objs.PasswordNamespace = s.opts.PasswordNamespace
	s.passwords = passwordsOf(secrets.Items)
	return in, objs, nil
}

// passwordsOf indexes Secret values by "namespace/name/key"; secrets are
// those of the namespace of BGP passwords, the only Secrets the speaker
// may read.
func passwordsOf(secrets []corev1.Secret) map[string]string {
	out := map[string]string{}
	for _, sec := range secrets {
		for k, v := range sec.Data {
			out[sec.Namespace+"/"+sec.Name+"/"+k] = string(v)
		}
	}
	return out
}

// peerAddrs are the other nodes' internal addresses of the gossip family,
// where their speakers gossip.
func peerAddrs(nodes []corev1.Node, self string, v4 bool) []string {
	var out []string
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		for _, a := range n.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if a.Type == corev1.NodeInternalIP && err == nil && ip.Is4() == v4 {
				out = append(out, ip.String())
			}
		}
	}
	slices.Sort(out)
	return out
}
