// Package webhook is Pier's validating admission webhook for its own custom
// resources (IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement and
// Relay in pier.dev/v1alpha1).
//
// A request for CREATE or UPDATE is checked the way the controller and the
// speakers will read it: the webhook lists the current objects of the four
// kinds in Pier's namespace, puts the incoming object in place of its old
// version and runs config.Parse over the whole set. It refuses the object
// only for the problems config.ForObject attributes to that object, each
// message naming the field, so an older invalid object never blocks fixing
// an unrelated one. DELETE is not registered.
//
// A Relay is different: it lives in an application's namespace (any
// namespace) and refers to none of the configuration objects, so it is
// checked alone with config.ParseRelay, with nothing listed.
//
// The server manages its own certificate: a Secret in Pier's namespace holds
// the serving pair and the CA bundle, shared by every replica, and the
// caBundle of the ValidatingWebhookConfiguration is kept equal to it. See
// rotator.go for how rotation avoids a window where the API server does not
// trust the served certificate.
//
// # Failure policy: Ignore
//
// The configuration this package creates uses failurePolicy Ignore, on
// purpose:
//
//   - The webhook is fast feedback, not the only guard. The controller runs
//     the same config.Parse on what it reads and leaves an invalid object
//     out, with an event on the object at fault, applying the rest (the
//     speakers do the same, with a log line and a metric), so an object that
//     slips past while the webhook is down cannot break announcements or
//     allocations.
//   - With Fail, a controller that is down (crash loop, bad image, lost
//     node) would also block every change to the very objects needed to fix
//     it, and a fresh install that applies CRs before the controller is
//     ready (kubectl apply -f of one file, GitOps) would fail.
//   - The rules cover only Pier's own resources, so Ignore cannot let
//     anything else through, and namespaceSelector/objectSelector are left
//     empty so no label can opt an object out while the webhook is up.
//
// The cost is that, while the webhook is unreachable, invalid objects are
// accepted by the API server and only reported later, by the controller.
//
// # Reading the current objects
//
// The handler decides from an informer cache (Options.Cached), so a burst
// of requests costs the API server nothing. The cache may lag behind: a
// webhook must see the pool created a moment ago by the same kubectl apply,
// or it would refuse the advertisement that references it. So a refusal is
// confirmed with direct (uncached) Lists (Options.Objects) before it is
// given; an object the cache lets through wrongly is reported by the
// controller, which validates again.
//
// # Wiring
//
// The controller's main builds a Server and runs it on every replica, not
// only the leader:
//
//	wh, err := webhook.New(webhook.Options{
//		Kube:        kubernetes.NewForConfigOrDie(cfg),
//		Objects:     webhook.ClientReader{Reader: mgr.GetAPIReader()},
//		Namespace:   "pier-system",
//		ServiceName: "pier-webhook", // or URL: "https://192.0.2.1:9443" outside a cluster
//		Logger:      log,
//		Metrics:     webhook.NewMetrics(registerer),
//	})
//	mgr.Add(wh)                              // NeedLeaderElection is false
//	mgr.AddReadyzCheck("webhook", wh.ReadyCheck)
//
// RBAC: get, list, watch, create, update on secrets in the namespace (the
// list and watch use a metadata.name field selector, so resourceNames may
// restrict all but create); get, list, watch, create, update on
// validatingwebhookconfigurations (admissionregistration.k8s.io); list on
// the four Pier resources in the namespace.
//
// When the install manifests already ship the configuration, the server only
// sets its caBundle and leaves everything else, failure policy included, as
// shipped; it creates the configuration only when it is absent. Status
// subresource writes are not covered by the rules.
package webhook
