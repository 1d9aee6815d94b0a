package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

func keyOf(svc *corev1.Service) allocator.ServiceKey {
	return allocator.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}
}

// requestFor turns a Service into an allocation request. nsLabels are the
// labels of the Service's namespace.
func requestFor(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, error) {
	req := allocator.Request{
		Service:         keyOf(svc),
		Policy:          policyOf(svc.Spec.IPFamilyPolicy),
		Pool:            svc.Annotations[v1alpha1.AnnotationAddressPool],
		SharingKey:      svc.Annotations[v1alpha1.AnnotationAllowSharedIP],
		Ports:           portsOf(svc),
		NamespaceLabels: nsLabels,
		ServiceLabels:   svc.Labels,
		Created:         svc.CreationTimestamp.Time,
	}
	for _, f := range svc.Spec.IPFamilies {
		req.Families = append(req.Families, familyOf(f))
	}
	var err error
	req.Addrs, err = requestedAddrs(svc)
	return req, err
}

func policyOf(p *corev1.IPFamilyPolicy) allocator.FamilyPolicy {
	if p == nil {
		return allocator.SingleStack
	}
	switch *p {
	case corev1.IPFamilyPolicyPreferDualStack:
		return allocator.PreferDualStack
	case corev1.IPFamilyPolicyRequireDualStack:
		return allocator.RequireDualStack
	}
	return allocator.SingleStack
}

func familyOf(f corev1.IPFamily) allocator.Family {
	if f == corev1.IPv6Protocol {
		return allocator.IPv6
	}
	return allocator.IPv4
}

func portsOf(svc *corev1.Service) []allocator.Port {
	ports := make([]allocator.Port, 0, len(svc.Spec.Ports))
	for _, p := range svc.Spec.Ports {
		proto := allocator.Protocol(p.Protocol)
		if proto == "" {
			proto = allocator.TCP
		}
		ports = append(ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	return ports
}

// requestedAddrs reads the pier.dev/loadBalancerIPs annotation, or else the
// deprecated spec.loadBalancerIP.
func requestedAddrs(svc *corev1.Service) ([]netip.Addr, error) {
	raw, field := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs], "annotation "+v1alpha1.AnnotationLoadBalancerIPs
	if raw == "" {
		raw, field = svc.Spec.LoadBalancerIP, "spec.loadBalancerIP"
	}
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var addrs []netip.Addr
	for _, s := range strings.Split(raw, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address", field, s)
		}
		addrs = append(addrs, a.Unmap())
	}
	if len(addrs) > 2 || (len(addrs) == 2 && addrs[0].Is4() == addrs[1].Is4()) {
		return nil, fmt.Errorf("%s: %q: want one address, or one IPv4 and one IPv6", field, raw)
	}
	return addrs, nil
}

// claimOf reads the addresses svc holds from its status, for restore.
func claimOf(svc *corev1.Service) (allocator.Claim, bool) {
	c := allocator.Claim{
		Service:    keyOf(svc),
		SharingKey: svc.Annotations[v1alpha1.AnnotationAllowSharedIP],
		Ports:      portsOf(svc),
		Created:    svc.CreationTimestamp.Time,
	}
	c.Addrs = config.IngressAddrs(svc)
	return c, len(c.Addrs) > 0
}

// ingressFor is the status Pier writes for the given assignments.
func ingressFor(as []allocator.Assignment) []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, len(as))
	for i, a := range as {
		out[i] = corev1.LoadBalancerIngress{IP: a.Addr.String(), IPMode: &vip}
	}
	return out
}

// poolOf names the pool(s) the assignments came from, for the annotation.
func poolOf(as []allocator.Assignment) string {
	var names []string
	for _, a := range as {
		if a.Pool != "" && !slices.Contains(names, a.Pool) {
			names = append(names, a.Pool)
		}
	}
	return strings.Join(names, ",")
}
