package migrate

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Decode reads a stream of YAML documents (separated by "---") or JSON
// objects. Empty documents are skipped and List objects (kubectl get -o
// yaml) are expanded into their items.
func Decode(r io.Reader) ([]unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		objs, err := expand(unstructured.Unstructured{Object: m})
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, objs...)
	}
}

// expand returns the items of a List, or u itself.
func expand(u unstructured.Unstructured) ([]unstructured.Unstructured, error) {
	if u.GetKind() == "" {
		return nil, errors.New("object has no kind")
	}
	if !u.IsList() || !strings.HasSuffix(u.GetKind(), "List") {
		return []unstructured.Unstructured{u}, nil
	}
	var out []unstructured.Unstructured
	err := u.EachListItem(func(o runtimeObject) error {
		item, ok := o.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("list item is %T", o)
		}
		out = append(out, *item)
		return nil
	})
	return out, err
}
