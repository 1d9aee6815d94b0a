package config

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// Serves reports whether Pier is responsible for svc: a LoadBalancer with
// no class (unless only Pier's own class is served) or with Pier's class.
// The controller and the speakers must agree on it.
func Serves(svc *corev1.Service, onlyOwnClass bool) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	class := svc.Spec.LoadBalancerClass
	if class == nil {
		return !onlyOwnClass
	}
	return *class == v1alpha1.LoadBalancerClass
}

// IngressAddrs reads the addresses a Service holds from its status
// (unparsable entries are skipped; IPv4-mapped IPv6 becomes IPv4).
func IngressAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
