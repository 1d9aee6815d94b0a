package agent

import (
	"cmp"
	"errors"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/configstatus"
)

// newConfigStatus is the writer of this node's ConfigurationStatus
// (relay-<node>) in Options.StatusNamespace; nil when that is empty.
func (a *Agent) newConfigStatus() (*configstatus.Writer, error) {
	if a.opts.StatusNamespace == "" {
		return nil, nil
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(a.opts.Config, client.Options{Scheme: scheme, Mapper: restMapper()})
	if err != nil {
		return nil, err
	}
	return configstatus.New(configstatus.Options{
		Client: c, Namespace: a.opts.StatusNamespace, Node: a.opts.NodeName,
		Component: v1alpha1.ComponentRelay, Owner: a.opts.Owner, Clock: a.opts.Clock, Logger: a.opts.Logger,
	})
}

// refusedErr joins the problems of the refused Relays, by Relay; nil when
// none is refused.
func refusedErr(refused map[Key]error) error {
	keys := slices.SortedFunc(maps.Keys(refused), func(a, b Key) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = refused[k]
	}
	return errors.Join(errs...)
}
