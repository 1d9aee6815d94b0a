package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// startControllers runs kube-controller-manager and kube-scheduler as the
// admin identity, without leader election and without serving ports of
// their own (several clusters may run at once). The controller manager
// publishes the CA as kube-root-ca.crt, which every Pod's service-account
// volume needs, and does no node IPAM: lab nodes get their Pod ranges from
// the lab.
func (c *Cluster) startControllers(ctx context.Context, binDir string) error {
	common := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	}
	kcm := append([]string{
		"--root-ca-file=" + c.pki.CACert,
		"--service-account-private-key-file=" + c.pki.SAKey,
		"--use-service-account-credentials=false",
		"--controllers=*,-nodeipam",
		"--node-monitor-grace-period=20s",
		"--concurrent-service-endpoint-syncs=10",
	}, common...)
	for _, comp := range []struct {
		bin  string
		args []string
	}{
		{"kube-controller-manager", kcm},
		{"kube-scheduler", common},
	} {
		p, err := startProcess(filepath.Join(binDir, comp.bin), filepath.Join(c.Dir, comp.bin+".log"), comp.args...)
		if err != nil {
			return fmt.Errorf("start %s: %w", comp.bin, err)
		}
		c.controllers = append(c.controllers, p)
	}
	return c.waitControllers(ctx)
}

// waitControllers waits until the controller manager works (it has
// published kube-root-ca.crt) and fails early if either component exits.
func (c *Cluster) waitControllers(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.controllers {
			if p.exited() {
				return false, fmt.Errorf("%s exited", filepath.Base(p.log))
			}
		}
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
}
