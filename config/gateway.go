package config

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// KindConfigMap is the Kind of a GatewayClass's parameters in [Error.Kind].
const KindConfigMap = "ConfigMap"

// GatewayDataPath says what carries a Gateway's traffic.
type GatewayDataPath string

const (
	// GatewayKubeProxy: kube-proxy forwards the Gateway's address to the
	// routes' backends (the Gateway's Service lists them).
	GatewayKubeProxy GatewayDataPath = "KubeProxy"
	// GatewayRelay: pier-relay serves the Gateway (a Relay owned by the
	// Gateway), placing flows by weighted Maglev.
	GatewayRelay GatewayDataPath = "Relay"
)

// Keys of a GatewayClass's parameters ConfigMap.
const (
	GatewayParamDataPath      = "dataPath"
	GatewayParamProxyProtocol = "proxyProtocol"
	GatewayParamRoutingKey    = "routingKey"
)

var gatewayParamKeys = []string{GatewayParamDataPath, GatewayParamProxyProtocol, GatewayParamRoutingKey}

// GatewayParameters are the settings a GatewayClass of Pier's gives its
// Gateways, read from the ConfigMap its spec.parametersRef names.
type GatewayParameters struct {
	DataPath GatewayDataPath
	// ProxyProtocol: the relay sends a PROXY protocol v2 header to the
	// backends (Relay data path only).
	ProxyProtocol bool
	// RoutingKey is what Maglev hashes (Relay data path): ClientAddressPort
	// (default), or ClientAddress so that all of a client's flows, TCP and
	// UDP, reach one backend.
	RoutingKey v1alpha1.RelayRoutingKey
}

// ParseGatewayParameters reads a GatewayClass's parameters; nil (no
// parametersRef) gives the defaults: the kube-proxy data path.
func ParseGatewayParameters(cm *corev1.ConfigMap) (GatewayParameters, []*Error) {
	out := GatewayParameters{DataPath: GatewayKubeProxy, RoutingKey: v1alpha1.RoutingKeyClientAddressPort}
	if cm == nil {
		return out, nil
	}
	p := &parser{}
	r := refOf(KindConfigMap, &cm.ObjectMeta)
	for k := range cm.Data {
		if !slices.Contains(gatewayParamKeys, k) {
			p.fail(r, "data."+k, "unknown key; the keys are %s", strings.Join(gatewayParamKeys, ", "))
		}
	}
	switch dp := GatewayDataPath(cm.Data[GatewayParamDataPath]); dp {
	case "":
	case GatewayKubeProxy, GatewayRelay:
		out.DataPath = dp
	default:
		p.fail(r, "data."+GatewayParamDataPath, "%q: want %s or %s", dp, GatewayKubeProxy, GatewayRelay)
	}
	if v, ok := cm.Data[GatewayParamProxyProtocol]; ok {
		b, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			p.fail(r, "data."+GatewayParamProxyProtocol, "%q: want true or false", v)
		case b && out.DataPath != GatewayRelay:
			p.fail(r, "data."+GatewayParamProxyProtocol, "needs %s: %s (kube-proxy adds no header)", GatewayParamDataPath, GatewayRelay)
		}
		out.ProxyProtocol = b
	}
	switch k := v1alpha1.RelayRoutingKey(cm.Data[GatewayParamRoutingKey]); k {
	case "":
	case v1alpha1.RoutingKeyClientAddress, v1alpha1.RoutingKeyClientAddressPort:
		if out.DataPath != GatewayRelay {
			p.fail(r, "data."+GatewayParamRoutingKey, "needs %s: %s (kube-proxy places flows itself)", GatewayParamDataPath, GatewayRelay)
		}
		out.RoutingKey = k
	default:
		p.fail(r, "data."+GatewayParamRoutingKey, "%q: want %s or %s", k, v1alpha1.RoutingKeyClientAddressPort, v1alpha1.RoutingKeyClientAddress)
	}
	if len(p.errs) > 0 {
		slices.SortFunc(p.errs, func(a, b *Error) int { return strings.Compare(a.Field, b.Field) })
		return GatewayParameters{}, p.errs
	}
	return out, nil
}
