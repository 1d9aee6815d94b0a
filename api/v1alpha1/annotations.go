package v1alpha1

// Service annotations Pier reads and writes.
const (
	// AnnotationLoadBalancerIPs requests specific addresses: one, or one per
	// family separated by a comma ("198.51.100.210,2001:db8:100::210").
	AnnotationLoadBalancerIPs = "pier.dev/loadBalancerIPs"
	// AnnotationAddressPool requests addresses from the named pool.
	AnnotationAddressPool = "pier.dev/address-pool"
	// AnnotationAllowSharedIP is the sharing key: Services with the same key
	// may share an address when their ports do not clash.
	AnnotationAllowSharedIP = "pier.dev/allow-shared-ip"
	// AnnotationAllocatedFromPool is written by Pier: the pool the Service's
	// addresses came from.
	AnnotationAllocatedFromPool = "pier.dev/ip-allocated-from-pool"
)

// ConditionAddressAssigned is the Service status condition Pier writes
// when it cannot assign a Service's addresses: False with the failure's
// reason (NotInAnyPool, AddressInUse, PoolExhausted...) and message, and
// True (reason Assigned) once it can. Services that never failed do not
// carry it, so a cluster's Services are not rewritten to add it.
const ConditionAddressAssigned = "pier.dev/AddressAssigned"

// ReasonAssigned is ConditionAddressAssigned's reason once assigned.
const ReasonAssigned = "Assigned"

// LoadBalancerClass is the spec.loadBalancerClass Pier serves when told to
// serve only its own class.
const LoadBalancerClass = "pier.dev/lb"

// LabelEndpointWeight on an EndpointSlice of a Relay's backend Service
// gives its endpoints' weight: their share of new flows relative to the
// other endpoints', on the Relay listeners named by the slice's ports
// only. Pier's Gateway controller writes such slices for Gateways served
// by pier-relay; slices without it serve every listener with weight 1.
const LabelEndpointWeight = "pier.dev/weight"
