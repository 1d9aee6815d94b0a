// Package relayctl is the Relay controller: for every Relay it keeps the
// Service Pier owns for it (exposure LoadBalancer or NodePort), that
// Service's EndpointSlices, and the Relay's status (addresses, ready
// backends, ready relays from their Leases, conditions). It runs on the
// leader only, in the controller manager beside the Service controller
// (package controller), which gives the owned LoadBalancer Service its
// address like any other.
package relayctl
