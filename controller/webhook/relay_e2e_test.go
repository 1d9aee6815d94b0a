package webhook

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// checkRelays runs with the webhook of TestAgainstAPIServer in effect:
// Relays in an application namespace are admitted when valid and refused,
// naming the field, when the CRD schema passes them but config.ParseRelay
// does not, on create and on update.
func checkRelays(ctx context.Context, t *testing.T, kube kubernetes.Interface, cl client.Client) {
	t.Helper()
	const ns = "calls"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	good := relay(ns, "edge")
	if err := cl.Create(ctx, good); err != nil {
		t.Fatalf("valid Relay refused: %v", err)
	}
	wantDenied(t, cl.Create(ctx, relay(ns, "dup", duplicatePort)), "spec.listeners[1].port", "Relay calls/dup", "8443/TCP is also spec.listeners[0]")
	wantDenied(t, cl.Create(ctx, relay(ns, "np", func(s *v1alpha1.RelaySpec) {
		s.Listeners = []v1alpha1.RelayListener{{Name: "a", Protocol: corev1.ProtocolUDP, Port: 16384, NodePort: 31000}}
	})), "spec.listeners[0].nodePort", "only with exposure NodePort")
	wantDenied(t, cl.Create(ctx, relay(ns, "slow", func(s *v1alpha1.RelaySpec) {
		s.Timeouts.Connect = &metav1.Duration{Duration: 10 * time.Minute}
	})), "spec.timeouts.connect", "longer than 5m0s")
	wantDenied(t, cl.Create(ctx, relay(ns, "ann", func(s *v1alpha1.RelaySpec) {
		s.Exposure.ServiceAnnotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "pool-a"}
	})), "spec.exposure.serviceAnnotations[pier.dev/ip-allocated-from-pool]", "not a Pier annotation")

	update := &v1alpha1.Relay{}
	if err := cl.Get(ctx, client.ObjectKeyFromObject(good), update); err != nil {
		t.Fatal(err)
	}
	update.Spec.Exposure.Type = v1alpha1.ExposeHostNetwork
	update.Spec.Exposure.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	wantDenied(t, cl.Update(ctx, update), "spec.exposure.ipFamilies", "exposure HostNetwork")
	update.Spec.Exposure.IPFamilies = nil
	if err := cl.Update(ctx, update); err != nil {
		t.Fatalf("valid Relay update refused: %v", err)
	}
}
