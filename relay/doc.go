// Package relay is the L4 TCP/UDP relay behind a LoadBalancer address: it
// sends each flow to the backend that owns it (Maglev over ready endpoints)
// whichever node receives it. See DESIGN.md; built by the relay issue.
package relay
