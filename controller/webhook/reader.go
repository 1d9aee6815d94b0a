package webhook

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// ObjectsReader reads the current Pier custom resources of a namespace.
type ObjectsReader interface {
	Objects(ctx context.Context, namespace string) (config.Objects, error)
}

// ClientReader reads the objects through a controller-runtime reader whose
// scheme has v1alpha1 registered. Pass a manager's GetAPIReader() (direct,
// so an object created a moment ago is seen; see the package documentation)
// or a client.New client.
type ClientReader struct {
	Reader client.Reader
}

// Objects lists the four kinds in namespace.
func (r ClientReader) Objects(ctx context.Context, namespace string) (config.Objects, error) {
	var (
		pools v1alpha1.IPAddressPoolList
		l2    v1alpha1.L2AdvertisementList
		peers v1alpha1.BGPPeerList
		bgp   v1alpha1.BGPAdvertisementList
	)
	for _, l := range []client.ObjectList{&pools, &l2, &peers, &bgp} {
		if err := r.Reader.List(ctx, l, client.InNamespace(namespace)); err != nil {
			return config.Objects{}, fmt.Errorf("list %T in %s: %w", l, namespace, err)
		}
	}
	return config.Objects{
		Pools: pools.Items, L2Advertisements: l2.Items,
		BGPPeers: peers.Items, BGPAdvertisements: bgp.Items,
	}, nil
}

// StaticReader is a fake ObjectsReader returning the same objects for any
// namespace, or Err.
type StaticReader struct {
	Current config.Objects
	Err     error
}

// Objects returns r.Current or r.Err.
func (r StaticReader) Objects(context.Context, string) (config.Objects, error) {
	return r.Current, r.Err
}
