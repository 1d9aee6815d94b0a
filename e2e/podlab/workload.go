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
	if err := e.ensureNamespace(ctx, ns); err != nil {
		return err
	}
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
						Command: []string{"/pier-lab", "echo", "-name", "$(POD_NAME)", "-tcp", fmt.Sprintf(":%d", CallTCPPort), "-udp", fmt.Sprintf(":%d", CallUDPPort)},
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
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": name},
			ExternalTrafficPolicy: etp,
			Ports: []corev1.ServicePort{
				{Name: "call-tcp", Port: CallTCPPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(CallTCPPort)},
				{Name: "call-udp", Port: CallUDPPort, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(CallUDPPort)},
			},
		},
	}
	if _, err := e.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return netip.Addr{}, fmt.Errorf("create service %s/%s: %w", ns, name, err)
	}
	return e.WaitServiceAddress(ctx, ns, name)
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
