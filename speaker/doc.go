// Package speaker runs on every node: it computes the announcements the node
// owes for the current Services and configuration (a pure function) and
// hands the whole desired set to idempotent announcers for L2 (ARP/NDP),
// BGP (gobgp) and local VIP addresses. See DESIGN.md; built by the speaker
// issues.
package speaker
