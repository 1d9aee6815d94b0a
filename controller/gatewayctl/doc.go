// Package gatewayctl makes Pier a Gateway API implementation for L4
// Gateways: the GatewayClass controller pier.dev/gateway-controller.
//
// For each Gateway of an accepted class it owns one Service of type
// LoadBalancer (class pier.dev/lb, no selector) whose ports are the
// Gateway's TCP and UDP listeners and whose requested addresses are the
// Gateway's spec.addresses; Pier's allocator gives it addresses from the
// pools and the speakers announce them like any Service's. The controller
// writes the Service's EndpointSlices itself, copied from the ready
// endpoints of the Services the attached TCPRoutes and UDPRoutes name as
// backends, with each backend's target port: kube-proxy forwards the
// Gateway's address to the routes' backends.
//
// A GatewayClass whose parametersRef names a ConfigMap in Pier's namespace
// saying dataPath: Relay (config.ParseGatewayParameters) has its Gateways
// served by pier-relay instead (relay.go): the controller owns a Relay per
// Gateway, and the owned Service, headless, names the Relay's backends in
// weighted EndpointSlices, so that every relay places a flow on the same
// backend by weighted Maglev. kube-proxy cannot weigh endpoints: on its
// path a route whose weights would give endpoints unequal shares says so
// in its status (ConditionWeightsHonored).
//
// The mapping from Gateway, routes and backends to the Service, its
// EndpointSlices and every status is pure (Build); the controller reads
// the objects, applies the result and writes the statuses.
package gatewayctl
