package kubelab

import (
	"io"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
)

var describeTmpl = template.Must(template.New("").Parse(`
Pier lab {{.Prefix}} is up.

  control plane   {{.Host}}  (root namespace; published on the management network at {{.API}})
  kubeconfig      {{.Kubeconfig}}
  node kubeconfig {{.NodeKubeconfig}}
  namespaces      {{.Namespaces}}

  L2 segment      {{.SegV4}}, {{.SegV6}}  (LoadBalancer pool 198.51.100.200-198.51.100.250)
  client          {{.Client}} in {{.ClientNS}}, behind the router {{.RouterNS}}

Try:
  {{.Kubectl}} --kubeconfig {{.Kubeconfig}} get nodes -o wide
  {{.Kubectl}} --kubeconfig {{.Kubeconfig}} get svc,ipaddresspools,servicel2statuses -A
  {{.Kubectl}} --kubeconfig {{.Kubeconfig}} create service loadbalancer web --tcp=443:8443
  ip netns exec {{.ClientNS}} ping -c1 198.51.100.11
  ip netns exec {{.Node1NS}} {{.Kubectl}} --kubeconfig {{.NodeKubeconfig}} get nodes

Press Ctrl-C to tear everything down.
`))

// Describe writes where everything is and what to try.
func (e *Env) Describe(w io.Writer) error {
	clientV4, _ := lab.ClientAddrs()
	var names []string
	for _, h := range e.Site.Nodes {
		names = append(names, h.NS)
	}
	return describeTmpl.Execute(w, map[string]any{
		"Prefix":         e.Lab.Prefix,
		"Host":           e.Cluster.Config.Host,
		"API":            e.APIServer,
		"Kubeconfig":     e.Cluster.Kubeconfig,
		"NodeKubeconfig": e.NodeKubeconfig,
		"Namespaces":     strings.Join(append(names, e.Site.Router.NS, e.Site.Client.NS), " "),
		"SegV4":          lab.SegmentV4,
		"SegV6":          lab.SegmentV6,
		"Client":         clientV4.Addr(),
		"ClientNS":       e.Site.Client.NS,
		"RouterNS":       e.Site.Router.NS,
		"Node1NS":        e.Site.Nodes[0].NS,
		"Kubectl":        filepath.Join(cluster.DefaultBinDir(), "kubectl"),
	})
}
