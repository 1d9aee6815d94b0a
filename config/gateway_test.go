package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseGatewayParameters(t *testing.T) {
	cm := func(data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "pier-system", Name: "relay"}, Data: data}
	}
	for _, tc := range []struct {
		name string
		cm   *corev1.ConfigMap
		want GatewayParameters
		errs []string
	}{
		{name: "none: kube-proxy", want: GatewayParameters{DataPath: GatewayKubeProxy, RoutingKey: "ClientAddressPort"}},
		{name: "empty: kube-proxy", cm: cm(nil), want: GatewayParameters{DataPath: GatewayKubeProxy, RoutingKey: "ClientAddressPort"}},
		{name: "relay with PROXY v2 by client address", cm: cm(map[string]string{"dataPath": "Relay", "proxyProtocol": "true", "routingKey": "ClientAddress"}),
			want: GatewayParameters{DataPath: GatewayRelay, ProxyProtocol: true, RoutingKey: "ClientAddress"}},
		{name: "relay", cm: cm(map[string]string{"dataPath": "Relay"}), want: GatewayParameters{DataPath: GatewayRelay, RoutingKey: "ClientAddressPort"}},
		{name: "bad values", cm: cm(map[string]string{"dataPath": "Envoy", "proxyProtocol": "yes", "mode": "x", "routingKey": "Port"}), errs: []string{
			`ConfigMap pier-system/relay: data.dataPath: "Envoy": want KubeProxy or Relay`,
			"ConfigMap pier-system/relay: data.mode: unknown key; the keys are dataPath, proxyProtocol, routingKey",
			`ConfigMap pier-system/relay: data.proxyProtocol: "yes": want true or false`,
			`ConfigMap pier-system/relay: data.routingKey: "Port": want ClientAddressPort or ClientAddress`,
		}},
		{name: "routing key through kube-proxy", cm: cm(map[string]string{"routingKey": "ClientAddress"}), errs: []string{
			"ConfigMap pier-system/relay: data.routingKey: needs dataPath: Relay (kube-proxy places flows itself)",
		}},
		{name: "PROXY v2 through kube-proxy", cm: cm(map[string]string{"proxyProtocol": "true"}), errs: []string{
			"ConfigMap pier-system/relay: data.proxyProtocol: needs dataPath: Relay (kube-proxy adds no header)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseGatewayParameters(tc.cm)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if diff := cmp.Diff(tc.errs, msgs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parameters (-want +got):\n%s", diff)
			}
		})
	}
}
