package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hostLimits are the host-wide kernel limits a site of n nodes needs, by
// sysctl name. Every namespace of the machine shares them: the ARP and
// NDP neighbour tables are one table each for all namespaces (a node on a
// real segment has its own), and every veth hands its packets to the
// same per-CPU backlog (a real node has its own NIC queues). On a segment
// of n nodes each node resolves the others and the router, so each table
// holds about (n+1)² entries per site: at 100 nodes 10,201 against the
// default limit of 1,024, past which the kernel refuses to resolve and
// nodes stop hearing each other. A broadcast on the segment is queued
// once per port, so a burst of them overflows the default backlog of
// 1,000 packets.
func hostLimits(n int) map[string]int {
	entries := (n + 1) * (n + 1)
	thresh3 := max(16384, 4*entries) // room for other sites running beside
	return map[string]int{
		"net.ipv4.neigh.default.gc_thresh2": thresh3 / 2,
		"net.ipv4.neigh.default.gc_thresh3": thresh3,
		"net.ipv6.neigh.default.gc_thresh2": thresh3 / 2,
		"net.ipv6.neigh.default.gc_thresh3": thresh3,
		"net.core.netdev_max_backlog":       max(1000, 100*n),
	}
}

// raiseHostLimits raises the host's limits to hostLimits(n); it never
// lowers one (another site may need more).
func raiseHostLimits(n int) error {
	for key, want := range hostLimits(n) {
		path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		if have >= want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			return fmt.Errorf("raise %s from %d to %d: %w", key, have, want, err)
		}
	}
	return nil
}
