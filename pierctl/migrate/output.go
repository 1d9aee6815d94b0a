package migrate

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Output returns the objects to apply, in apply order: Secrets, pools,
// L2 advertisements, peers, BGP advertisements, each by name. Each is
// plain JSON data (no creationTimestamp, no empty status).
func (r *Result) Output() ([]*unstructured.Unstructured, error) {
	var objs []any
	for i := range r.Secrets {
		objs = append(objs, &r.Secrets[i])
	}
	o := &r.Objects
	for i := range o.Pools {
		objs = append(objs, &o.Pools[i])
	}
	for i := range o.L2Advertisements {
		objs = append(objs, &o.L2Advertisements[i])
	}
	for i := range o.BGPPeers {
		objs = append(objs, &o.BGPPeers[i])
	}
	for i := range o.BGPAdvertisements {
		objs = append(objs, &o.BGPAdvertisements[i])
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, obj := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
		if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
			delete(m, "status")
		}
		out[i] = &unstructured.Unstructured{Object: m}
	}
	return out, nil
}

// WriteYAML writes objs as one multi-document YAML stream.
func WriteYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// WriteDir writes one file per object into dir (created if missing), named
// so that applying the directory (kubectl apply -f dir) goes in apply
// order: 01-secret-<name>.yaml, 02-ipaddresspool-<name>.yaml...
func WriteDir(dir string, objs []*unstructured.Unstructured) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rank := map[string]int{"Secret": 1, "IPAddressPool": 2, "L2Advertisement": 3, "BGPPeer": 4, "BGPAdvertisement": 5}
	for _, o := range objs {
		var buf bytes.Buffer
		if err := WriteYAML(&buf, []*unstructured.Unstructured{o}); err != nil {
			return err
		}
		name := fmt.Sprintf("%02d-%s-%s.yaml", rank[o.GetKind()], strings.ToLower(o.GetKind()), o.GetName())
		mode := os.FileMode(0o644)
		if o.GetKind() == "Secret" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), mode); err != nil {
			return err
		}
	}
	return nil
}
