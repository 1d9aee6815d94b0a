package migrate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// runtimeObject is runtime.Object, named for EachListItem's callback.
type runtimeObject = runtime.Object

// DefaultNamespace is Pier's namespace.
const DefaultNamespace = "pier-system"

// Options for Convert; the zero value uses the defaults.
type Options struct {
	// Namespace receives the Pier objects. Default pier-system.
	Namespace string
	// MetalLBNamespace is the only namespace MetalLB reads; objects in
	// others are skipped (objects without a namespace are taken as in it).
	// Default metallb-system.
	MetalLBNamespace string
	// PasswordNamespace receives the BGP password Secrets, the only
	// namespace where Pier's speakers read Secrets. Default
	// config.DefaultPasswordNamespace.
	PasswordNamespace string
}

func (o Options) withDefaults() Options {
	o.Namespace = cmp.Or(o.Namespace, DefaultNamespace)
	o.PasswordNamespace = cmp.Or(o.PasswordNamespace, config.DefaultPasswordNamespace)
	o.MetalLBNamespace = cmp.Or(o.MetalLBNamespace, DefaultMetalLBNamespace)
	return o
}

// Result is what Convert produced.
type Result struct {
	// Secrets hold passwords that were written inline in BGPPeers.
	Secrets []corev1.Secret
	// Objects are the Pier objects, each list sorted by name.
	Objects config.Objects
	// Findings report, in order, what was not carried over (Dropped) and
	// what needs attention (Note).
	Findings []Finding
}

// Dropped reports whether anything was not carried over.
func (r *Result) Dropped() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Level == Dropped })
}

// converter holds the state of one Convert call.
type converter struct {
	opts     Options
	res      Result
	aliases  map[string]string            // community alias -> value
	peers    map[string]bool              // converted BGPPeer names
	skipped  map[string]bool              // BGPPeer names not converted
	secrets  map[string]bool              // Secret names used
	names    map[string]bool              // kind/name already converted
	hasAlloc bool                         // some pool has a serviceAllocation
	bfd      map[string]*v1alpha1.BFDSpec // BFDProfile name -> the bfd block
}

// kindOrder is the order Convert reads kinds in: aliases and pools before
// the objects that refer to them.
var kindOrder = []string{"ConfigMap", "Community", "IPAddressPool", "L2Advertisement", "BFDProfile", "BGPPeer", "BGPAdvertisement"}

// Convert converts MetalLB objects (see the package documentation). It
// never fails: anything it cannot read is reported in Result.Findings.
func Convert(in []unstructured.Unstructured, opts Options) Result {
	c := &converter{
		opts: opts.withDefaults(), aliases: map[string]string{},
		peers: map[string]bool{}, skipped: map[string]bool{}, secrets: map[string]bool{}, names: map[string]bool{},
		bfd: map[string]*v1alpha1.BFDSpec{},
	}
	objs := c.expandLegacy(sortInput(in))
	for _, u := range sortInput(objs) {
		c.object(u)
	}
	c.renumberPriorities()
	c.sortOutput()
	return c.res
}

// sortInput orders objects by kind (kindOrder first), namespace and name.
func sortInput(in []unstructured.Unstructured) []unstructured.Unstructured {
	out := slices.Clone(in)
	rank := func(k string) int {
		if i := slices.Index(kindOrder, k); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	slices.SortStableFunc(out, func(a, b unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(rank(a.GetKind()), rank(b.GetKind())), cmp.Compare(a.GetKind(), b.GetKind()),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

func (c *converter) reporter(u *unstructured.Unstructured) reporter {
	return reporter{kind: u.GetKind(), namespace: cmp.Or(u.GetNamespace(), c.opts.MetalLBNamespace), name: u.GetName(), out: &c.res.Findings}
}

// object dispatches one object by group and kind.
func (c *converter) object(u unstructured.Unstructured) {
	r := c.reporter(&u)
	gv, kind := u.GroupVersionKind().GroupVersion(), u.GetKind()
	switch {
	case gv.Group == "" && kind == "Service":
		c.service(&u, r)
		return
	case gv.Group != Group:
		r.note("", "not a MetalLB configuration object (%s), ignored", u.GetAPIVersion())
		return
	case u.GetNamespace() != "" && u.GetNamespace() != c.opts.MetalLBNamespace:
		r.drop("metadata.namespace", "MetalLB reads only namespace %s, so this object had no effect; not converted", c.opts.MetalLBNamespace)
		return
	case c.names[kind+"/"+u.GetName()]:
		r.drop("metadata.name", "a second %s of this name (another API version?); not converted", kind)
		return
	}
	c.names[kind+"/"+u.GetName()] = true
	switch kind {
	case "Community":
		c.community(&u, r)
	case "IPAddressPool":
		c.pool(&u, r)
	case "L2Advertisement":
		c.l2(&u, r)
	case "BGPPeer":
		c.peer(&u, r)
	case "BGPAdvertisement":
		c.bgpAdv(&u, r)
	case "BFDProfile":
		c.bfdProfile(&u, r)
	case "AddressPool":
		r.drop("", "the deprecated AddressPool kind is not supported: convert it to IPAddressPool and advertisements with MetalLB first")
	default:
		r.note("", "not a MetalLB configuration kind, ignored")
	}
}

// decode reads u's spec into spec and reports the fields the kind does
// not handle; false if the spec cannot be read (the object is dropped).
func (c *converter) decode(u *unstructured.Unstructured, r reporter, spec any) bool {
	raw, _ := u.Object["spec"].(map[string]any)
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, spec)
	}
	if err != nil {
		r.drop("spec", "cannot read: %v; not converted", err)
		return false
	}
	reportUnknown(r, "spec", raw, specKeys[u.GetKind()])
	if sa, ok := raw["serviceAllocation"].(map[string]any); ok && u.GetKind() == "IPAddressPool" {
		reportUnknown(r, "spec.serviceAllocation", sa, serviceAllocationKeys)
	}
	return true
}

func reportUnknown(r reporter, path string, m map[string]any, known []string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			r.drop(path+"."+k, "not a field pierctl knows, dropped")
		}
	}
}

// meta is the Pier object's metadata: same name and labels (advertisements
// select pools by label), in Pier's namespace. Annotations are not carried
// over (they belong to the tools that managed the MetalLB object).
func (c *converter) meta(u *unstructured.Unstructured, r reporter) metav1.ObjectMeta {
	var dropped []string
	for k := range u.GetAnnotations() {
		if k != corev1.LastAppliedConfigAnnotation {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		r.note("metadata.annotations", "not carried over: %s", strings.Join(dropped, ", "))
	}
	return metav1.ObjectMeta{Name: u.GetName(), Namespace: c.opts.Namespace, Labels: u.GetLabels()}
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
}

// int32Field converts v, reporting values that do not fit.
func int32Field(r reporter, field string, v *int64) (*int32, bool) {
	if v == nil {
		return nil, true
	}
	if *v < math.MinInt32 || *v > math.MaxInt32 {
		r.drop(field, "%d is out of range, dropped", *v)
		return nil, false
	}
	n := int32(*v)
	return &n, true
}

func (c *converter) sortOutput() {
	byName := func(a, b metav1.Object) int { return cmp.Compare(a.GetName(), b.GetName()) }
	o := &c.res.Objects
	slices.SortFunc(o.Pools, func(a, b v1alpha1.IPAddressPool) int { return byName(&a, &b) })
	slices.SortFunc(o.L2Advertisements, func(a, b v1alpha1.L2Advertisement) int { return byName(&a, &b) })
	slices.SortFunc(o.BGPPeers, func(a, b v1alpha1.BGPPeer) int { return byName(&a, &b) })
	slices.SortFunc(o.BGPAdvertisements, func(a, b v1alpha1.BGPAdvertisement) int { return byName(&a, &b) })
	slices.SortFunc(c.res.Secrets, func(a, b corev1.Secret) int { return byName(&a, &b) })
}

// quoteList formats names for messages.
func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
