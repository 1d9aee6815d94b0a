package podlab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// Calling ports of the calling-server stand-ins.
const (
	CallTCPPort = 8443
	CallUDPPort = 16384
)

// DeployCallServers (idempotent) runs replicas calling-server stand-ins (pier-lab echo
// in whoami mode, named after their Pod) as Deployment name in ns, pulled
// from the lab registry, and waits until they are Ready.
func (e *Env) DeployCallServers(ctx context.Context, ns, name string, replicas int32) error {
	return e.deployCallServers(ctx, ns, name, replicas)
}

// DeployProxyCallServers is DeployCallServers with servers that read a
// PROXY v2 header in front of each connection and datagram and report its
// client: the servers behind a Relay with backend.proxyProtocol.
func (e *Env) DeployProxyCallServers(ctx context.Context, ns, name string, replicas int32) error {
	return e.deployCallServers(ctx, ns, name, replicas, "-proxy")
}

func (e *Env) deployCallServers(ctx context.Context, ns, name string, replicas int32, flags ...string) error {
	if err := e.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	command := append([]string{"/pier-lab", "echo", "-name", "$(POD_NAME)",
		"-tcp", fmt.Sprintf(":%d", CallTCPPort), "-udp", fmt.Sprintf(":%d", CallUDPPort)}, flags...)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(2)),
					Containers: []corev1.Container{{
						Name:    "server",
						Image:   e.Registry + "/" + LabImage,
						Command: command,
						Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports: []corev1.ContainerPort{
							{Name: "call-tcp", ContainerPort: CallTCPPort, Protocol: corev1.ProtocolTCP},
							{Name: "call-udp", ContainerPort: CallUDPPort, Protocol: corev1.ProtocolUDP},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(CallTCPPort)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := e.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create deployment %s/%s: %w", ns, name, err)
	}
	return e.WaitRollout(ctx, ns, 2*time.Minute, []string{name}, nil)
}

func (e *Env) ensureNamespace(ctx context.Context, ns string) error {
	_, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// CreateCallService (idempotent) exposes Deployment app=name in ns as a LoadBalancer
// Service name (8443/TCP, 16384/UDP) and returns its IPv4 address once
// Pier has assigned it.
func (e *Env) CreateCallService(ctx context.Context, ns, name string, etp corev1.ServiceExternalTrafficPolicy) (netip.Addr, error) {
	svc := callService(ns, name)
	svc.Spec.Type, svc.Spec.ExternalTrafficPolicy = corev1.ServiceTypeLoadBalancer, etp
	if err := e.createService(ctx, svc); err != nil {
		return netip.Addr{}, err
	}
	return e.WaitServiceAddress(ctx, ns, name)
}

// CreateRelay (idempotent) puts Relay name in ns, with PROXY v2 to its
// backends, in front of Deployment app=backend (through a ClusterIP
// Service backend, whose EndpointSlices the relays read), and returns the
// Relay's IPv4 address once Pier has assigned it to the Relay's Service.
func (e *Env) CreateRelay(ctx context.Context, ns, name, backend string) (netip.Addr, error) {
	if err := e.createService(ctx, callService(ns, backend)); err != nil {
		return netip.Addr{}, err
	}
	r := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.RelaySpec{
			Backend:  v1alpha1.RelayBackend{ServiceName: backend, ProxyProtocol: true},
			Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer},
			// A rolling relay keeps a TCP session until it ends or the
			// drain does (default 30 s; the lab's sessions never end):
			// 5 s keeps upgrades short. The drain is tested in relaymode.
			Timeouts: v1alpha1.RelayTimeouts{Drain: &metav1.Duration{Duration: 5 * time.Second}},
		},
	}
	if err := e.Pier.Create(ctx, r); err != nil && !apierrors.IsAlreadyExists(err) {
		return netip.Addr{}, fmt.Errorf("create relay %s/%s: %w", ns, name, err)
	}
	addr, err := e.WaitServiceAddress(ctx, ns, config.RelayServiceName(name))
	if err != nil {
		return netip.Addr{}, err
	}
	return addr, e.waitRelaysServe(ctx, r)
}

// waitRelaysServe waits until the relay of every node serves r (its
// status counts a Lease per node), as a user would before sending
// traffic: the address may be announced a moment before the relays
// listen on it.
func (e *Env) waitRelaysServe(ctx context.Context, r *v1alpha1.Relay) error {
	want := int32(len(e.Nodes))
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.Pier.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, nil
		}
		return r.Status.ReadyRelays >= want, nil
	})
	if err != nil {
		return fmt.Errorf("relay %s/%s: %d of %d relays serve it after 2 min", r.Namespace, r.Name, r.Status.ReadyRelays, want)
	}
	return nil
}

// callService is a ClusterIP Service name (8443/TCP, 16384/UDP) for
// Deployment app=name.
func callService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{
				{Name: "call-tcp", Port: CallTCPPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(CallTCPPort)},
				{Name: "call-udp", Port: CallUDPPort, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(CallUDPPort)},
			},
		},
	}
}

func (e *Env) createService(ctx context.Context, svc *corev1.Service) error {
	if _, err := e.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// WaitServiceAddress waits until Service ns/name has an IPv4 ingress
// address and returns it.
func (e *Env) WaitServiceAddress(ctx context.Context, ns, name string) (netip.Addr, error) {
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := e.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
				addr = a
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return addr, fmt.Errorf("service %s/%s got no address: %w\n%s", ns, name, err, e.Describe(context.Background(), Namespace))
	}
	return addr, nil
}
