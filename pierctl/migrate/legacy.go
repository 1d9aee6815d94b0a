package migrate

// MetalLB before v0.13 read its configuration from a ConfigMap (usually
// metallb-system/config, data key "config"). Its content is turned into
// the equivalent metallb.io objects, which then go through the same
// conversion as objects read from files or a cluster.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type legacyConfig struct {
	Peers          []legacyPeer      `json:"peers"`
	BGPCommunities map[string]string `json:"bgp-communities"`
	Pools          []legacyPool      `json:"address-pools"`
	BFDProfiles    []map[string]any  `json:"bfd-profiles"`
}

type legacyPeer struct {
	MyASN         int64                `json:"my-asn"`
	PeerASN       int64                `json:"peer-asn"`
	PeerAddress   string               `json:"peer-address"`
	SourceAddress string               `json:"source-address,omitempty"`
	PeerPort      int64                `json:"peer-port,omitempty"`
	HoldTime      string               `json:"hold-time,omitempty"`
	KeepaliveTime string               `json:"keepalive-time,omitempty"`
	RouterID      string               `json:"router-id,omitempty"`
	NodeSelectors []legacyNodeSelector `json:"node-selectors,omitempty"`
	Password      string               `json:"password,omitempty"`
	BFDProfile    string               `json:"bfd-profile,omitempty"`
	EBGPMultiHop  bool                 `json:"ebgp-multihop,omitempty"`
}

type legacyNodeSelector struct {
	MatchLabels      map[string]string `json:"match-labels,omitempty"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"match-expressions,omitempty"`
}

type legacyPool struct {
	Name              string      `json:"name"`
	Protocol          string      `json:"protocol"`
	Addresses         []string    `json:"addresses"`
	AutoAssign        *bool       `json:"auto-assign,omitempty"`
	AvoidBuggyIPs     bool        `json:"avoid-buggy-ips,omitempty"`
	BGPAdvertisements []legacyAdv `json:"bgp-advertisements,omitempty"`
}

type legacyAdv struct {
	AggregationLength   *int64   `json:"aggregation-length,omitempty"`
	AggregationLengthV6 *int64   `json:"aggregation-length-v6,omitempty"`
	LocalPref           int64    `json:"localpref,omitempty"`
	Communities         []string `json:"communities,omitempty"`
}

// expandLegacy replaces each legacy ConfigMap in MetalLB's namespace by
// the objects its configuration describes.
func (c *converter) expandLegacy(in []unstructured.Unstructured) []unstructured.Unstructured {
	var out []unstructured.Unstructured
	for _, u := range in {
		data, found, _ := unstructured.NestedString(u.Object, "data", "config")
		if u.GetAPIVersion() != "v1" || u.GetKind() != "ConfigMap" || !found ||
			cmpOr(u.GetNamespace(), c.opts.MetalLBNamespace) != c.opts.MetalLBNamespace {
			out = append(out, u)
			continue
		}
		out = append(out, c.legacy(&u, data)...)
	}
	return out
}

func (c *converter) legacy(u *unstructured.Unstructured, data string) []unstructured.Unstructured {
	r := c.reporter(u)
	var cfg legacyConfig
	if err := yaml.UnmarshalStrict([]byte(data), &cfg); err != nil {
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			r.drop("data.config", "cannot read: %v; not converted", err)
			return nil
		}
		r.drop("data.config", "%s; the rest is converted", strictMessage(err))
	}
	var out []unstructured.Unstructured
	if len(cfg.BGPCommunities) > 0 {
		var aliases []any
		for _, k := range sortedKeys(cfg.BGPCommunities) {
			aliases = append(aliases, map[string]any{"name": k, "value": cfg.BGPCommunities[k]})
		}
		out = append(out, synth("Community", u.GetName()+"-communities", map[string]any{"communities": aliases}))
	}
	for i, p := range cfg.Peers {
		out = append(out, synth("BGPPeer", fmt.Sprintf("%s-peer-%d", u.GetName(), i+1), legacyPeerSpec(p)))
	}
	for i, p := range cfg.Pools {
		out = append(out, c.legacyPool(r, i, p)...)
	}
	for i, b := range cfg.BFDProfiles {
		name, _ := b["name"].(string)
		if name == "" {
			r.drop(fmt.Sprintf("data.config.bfd-profiles[%d]", i), "no name, dropped")
			continue
		}
		out = append(out, synth("BFDProfile", name, legacyBFDSpec(b)))
	}
	return out
}

// synth builds a MetalLB object from a spec of plain JSON values.
func synth(kind, name string, spec map[string]any) unstructured.Unstructured {
	version := "v1beta1"
	if kind == "BGPPeer" {
		version = "v1beta2"
	}
	u := unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(Group + "/" + version)
	u.SetKind(kind)
	u.SetName(name)
	return u
}

// legacyBFDSpec renames a legacy BFD profile's keys to BFDProfile's
// fields; unknown keys stay, to be reported.
func legacyBFDSpec(b map[string]any) map[string]any {
	names := map[string]string{"receive-interval": "receiveInterval", "transmit-interval": "transmitInterval",
		"detect-multiplier": "detectMultiplier", "echo-interval": "echoInterval", "echo-mode": "echoMode",
		"passive-mode": "passiveMode", "minimum-ttl": "minimumTtl"}
	spec := map[string]any{}
	for k, v := range b {
		if k != "name" {
			spec[cmpOr(names[k], k)] = v
		}
	}
	return spec
}

func legacyPeerSpec(p legacyPeer) map[string]any {
	spec := map[string]any{"myASN": p.MyASN, "peerASN": p.PeerASN, "peerAddress": p.PeerAddress}
	set := func(k string, v any, ok bool) {
		if ok {
			spec[k] = v
		}
	}
	set("sourceAddress", p.SourceAddress, p.SourceAddress != "")
	set("peerPort", p.PeerPort, p.PeerPort != 0)
	set("holdTime", p.HoldTime, p.HoldTime != "")
	set("keepaliveTime", p.KeepaliveTime, p.KeepaliveTime != "")
	set("routerID", p.RouterID, p.RouterID != "")
	set("password", p.Password, p.Password != "")
	set("bfdProfile", p.BFDProfile, p.BFDProfile != "")
	set("ebgpMultiHop", p.EBGPMultiHop, p.EBGPMultiHop)
	var sels []any
	for _, s := range p.NodeSelectors {
		sel := map[string]any{}
		if len(s.MatchLabels) > 0 {
			sel["matchLabels"] = toAny(s.MatchLabels)
		}
		var exprs []any
		for _, e := range s.MatchExpressions {
			exprs = append(exprs, map[string]any{"key": e.Key, "operator": e.Operator, "values": toAnySlice(e.Values)})
		}
		if len(exprs) > 0 {
			sel["matchExpressions"] = exprs
		}
		sels = append(sels, sel)
	}
	set("nodeSelectors", sels, len(sels) > 0)
	return spec
}

// legacyPool returns the pool and its advertisement(s): protocol layer2
// gives an L2Advertisement, bgp one BGPAdvertisement per
// bgp-advertisements entry (one plain advertisement when none).
func (c *converter) legacyPool(r reporter, i int, p legacyPool) []unstructured.Unstructured {
	spec := map[string]any{"addresses": toAnySlice(p.Addresses), "avoidBuggyIPs": p.AvoidBuggyIPs}
	if p.AutoAssign != nil {
		spec["autoAssign"] = *p.AutoAssign
	}
	out := []unstructured.Unstructured{synth("IPAddressPool", p.Name, spec)}
	pools := []any{p.Name}
	switch strings.ToLower(p.Protocol) {
	case "layer2":
		out = append(out, synth("L2Advertisement", p.Name+"-l2", map[string]any{"ipAddressPools": pools}))
	case "bgp":
		advs := p.BGPAdvertisements
		if len(advs) == 0 {
			advs = []legacyAdv{{}}
		}
		for j, a := range advs {
			name := p.Name + "-bgp"
			if len(advs) > 1 {
				name = fmt.Sprintf("%s-bgp-%d", p.Name, j+1)
			}
			out = append(out, synth("BGPAdvertisement", name, legacyAdvSpec(pools, a)))
		}
	default:
		r.drop(fmt.Sprintf("data.config.address-pools[%d].protocol", i), "%q is neither layer2 nor bgp; pool %q is converted without an advertisement", p.Protocol, p.Name)
	}
	return out
}

func legacyAdvSpec(pools []any, a legacyAdv) map[string]any {
	spec := map[string]any{"ipAddressPools": pools}
	if a.AggregationLength != nil {
		spec["aggregationLength"] = *a.AggregationLength
	}
	if a.AggregationLengthV6 != nil {
		spec["aggregationLengthV6"] = *a.AggregationLengthV6
	}
	if a.LocalPref != 0 {
		spec["localPref"] = a.LocalPref
	}
	if len(a.Communities) > 0 {
		spec["communities"] = toAnySlice(a.Communities)
	}
	return spec
}

func toAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// strictMessage trims the decoder's prefixes from a strict decoding error.
func strictMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "json: "); i >= 0 {
		msg = msg[i+len("json: "):]
	}
	return msg
}
