package kubelab

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pier-lb/pier/e2e/lab"
)

// registerNodes creates a Node per site node, Ready, with its L2-segment
// addresses as InternalIPs (there is no kubelet to do it).
func registerNodes(ctx context.Context, cs kubernetes.Interface, site *lab.Site) error {
	for i, h := range site.Nodes {
		v4, v6 := lab.NodeAddrs(i + 1)
		if err := registerNode(ctx, cs, h.Name, v4.Addr().String(), v6.Addr().String()); err != nil {
			return err
		}
	}
	return nil
}

func registerNode(ctx context.Context, cs kubernetes.Interface, name string, addrs ...string) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux"},
	}}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "LabNode", Message: "lab namespace, no kubelet",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	for _, a := range addrs {
		created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of node %s: %w", name, err)
	}
	return nil
}
