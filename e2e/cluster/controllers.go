package cluster

import (
	"fmt"
	"path/filepath"
)

// startControllers runs kube-controller-manager and kube-scheduler as the
// admin identity, without leader election and without serving ports of
// their own (several clusters may run at once). The controller manager
// publishes the CA as kube-root-ca.crt, which every Pod's service-account
// volume needs, and does no node IPAM: lab nodes get their Pod ranges from
// the lab.
func (c *Cluster) startControllers(binDir string) error {
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
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
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
	return nil
}
