//go:build pins

// Package pins keeps the dependencies chosen for Pier in go.mod at their
// reviewed versions before every one of them has a user in the tree. It is
// never built; `go mod tidy` reads its imports because it ignores build tags.
package pins

import (
	_ "github.com/hashicorp/memberlist"
	_ "github.com/mdlayher/arp"
	_ "github.com/mdlayher/ndp"
	_ "github.com/osrg/gobgp/v3/pkg/server"
	_ "github.com/pires/go-proxyproto"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vishvananda/netlink"
	_ "k8s.io/client-go/kubernetes"
)
