// Package webhook is Pier's validating admission webhook for its own custom
// resources (IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement in
// pier.dev/v1alpha1).
//
// A request for CREATE or UPDATE is checked the way the controller and the
// speakers will read it: the webhook lists the current objects of the four
// kinds in Pier's namespace, puts the incoming object in place of its old
// version and runs config.Parse over the whole set. It refuses the object
// only for the problems config.ForObject attributes to that object, each
// message naming the field, so an older invalid object never blocks fixing
// an unrelated one. DELETE is not registered.
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
//   - The webhook is fast feedback, not the only guard. The controller and the
//     speakers run the same config.Parse on what they read and keep the last
//     good configuration when an object is invalid, reporting it, so an
//     object that slips past while the webhook is down cannot break
//     announcements or allocations.
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
// The handler reads through an ObjectsReader. A direct (uncached) List is
// preferred: a webhook must see the pool created a moment ago by the same
// kubectl apply, or it would refuse the advertisement that references it;
// an informer cache may lag behind. Requests for these kinds are rare, so
// the four Lists per request cost little.
package webhook
