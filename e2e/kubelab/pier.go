package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/manifests"
)

// PierNamespace holds Pier's configuration in the lab.
const PierNamespace = "pier-system"

// Pool is the lab's L2 pool (DESIGN.md's address plan).
var Pool = []string{"198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"}

// installPier installs the CRDs, Pier's namespace and the L2 pool, and
// starts pier-controller on the first node, talking to the API server over
// the management link like a real node's pod would; with gatewayAPI, the
// Gateway API CRDs too, and the controller serves Gateways.
func (e *Env) installPier(ctx context.Context, controllerBin string, gatewayAPI bool) error {
	if err := manifests.InstallCRDs(ctx, e.Cluster.Config); err != nil {
		return err
	}
	if gatewayAPI {
		if err := manifests.InstallGatewayAPI(ctx, e.Cluster.Config, manifests.GatewayAPIStandard); err != nil {
			return err
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: PierNamespace}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", PierNamespace, err)
	}
	pool := &v1alpha1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "lab-l2", Namespace: PierNamespace},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: Pool},
	}
	if err := e.Pier.Create(ctx, pool); err != nil {
		return fmt.Errorf("create pool: %w", err)
	}
	args := []string{"--kubeconfig", e.NodeKubeconfig, "--namespace", PierNamespace,
		"--webhook=false", // the API server in the root namespace cannot reach into the lab
		"--metrics-addr", "0", "--health-addr", "0"}
	if gatewayAPI {
		args = append(args, "--gateway-api")
	}
	p, err := e.Site.Nodes[0].Start(controllerBin, args...)
	if err != nil {
		return err
	}
	e.setController(p)
	go e.superviseController(controllerBin, args)
	return nil
}

// superviseController restarts the controller when it exits, as its
// Deployment would (it exits on purpose when it loses its Lease, for
// example while node1 cannot reach the API server).
func (e *Env) superviseController(bin string, args []string) {
	for {
		select {
		case <-e.closing:
			return
		case <-e.ControllerProcess().Done():
		}
		select {
		case <-e.closing:
			return
		case <-time.After(time.Second):
		}
		for e.controllerPaused() {
			select {
			case <-e.closing:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		p, err := e.Site.Nodes[0].Start(bin, args...)
		if err != nil {
			return // the lab is closing
		}
		e.setController(p)
	}
}

// PauseController stops pier-controller and keeps it stopped until
// ResumeController (for backlog measurements).
func (e *Env) PauseController() error {
	e.mu.Lock()
	e.paused = true
	e.mu.Unlock()
	return e.ControllerProcess().Stop()
}

// ResumeController lets the supervisor start pier-controller again (within
// about 20 ms).
func (e *Env) ResumeController() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.paused = false
}

func (e *Env) controllerPaused() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.paused
}

func (e *Env) setController(p *lab.Process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.controller = p
}

// ControllerProcess is the pier-controller process running now (it is
// restarted when it exits).
func (e *Env) ControllerProcess() *lab.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.controller
}

// CreateDemoService creates a dual-stack LoadBalancer Service for calls
// (8443/TCP, 16384/UDP) and waits for its addresses.
func (e *Env) CreateDemoService(ctx context.Context, name string) ([]netip.Addr, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			Selector:       map[string]string{"app": name},
			Ports: []corev1.ServicePort{
				{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
				{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: 16384, TargetPort: intstr.FromInt32(16384)},
			},
		},
	}
	if err := e.Pier.Create(ctx, svc); err != nil {
		return nil, fmt.Errorf("create service %s: %w", name, err)
	}
	var addrs []netip.Addr
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err
		}
		addrs = addrs[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				addrs = append(addrs, a)
			}
		}
		return len(addrs) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("service %s got no address: %w (controller output:\n%s)", name, err, e.ControllerProcess().Output())
	}
	return addrs, nil
}
