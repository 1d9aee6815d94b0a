package podlab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
)

// ARPWatch asks for an address on the L2 segment ten times a second from
// the router (arping) and captures every ARP packet about it there
// (tcpdump): which MACs answer each request, the view a client's router has
// while speakers come and go. arping itself reports only the first reply
// to a request, so the capture is what counts.
type ARPWatch struct {
	dump, ping *lab.Process
}

// ARPStats sums up an ARPWatch.
type ARPStats struct {
	Requests, Unanswered int
	// Dual counts requests answered by more than one MAC.
	Dual int
	// MACs are the MACs that answered, in order of first answer; Moves
	// counts changes of the answering MAC from one request to the next.
	MACs  []string
	Moves int
}

func (s ARPStats) String() string {
	return fmt.Sprintf("%d requests, %d unanswered, %d answered by two MACs, %d owner changes, MACs %v", s.Requests, s.Unanswered, s.Dual, s.Moves, s.MACs)
}

// StartARPWatch starts watching addr from router's interface iface.
func StartARPWatch(ctx context.Context, router *lab.Host, iface string, addr netip.Addr) (*ARPWatch, error) {
	dump, err := router.Start("tcpdump", "-l", "-nn", "-e", "-i", iface, "arp and host "+addr.String())
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := dump.WaitOutput(wctx, "listening on"); err != nil {
		_ = dump.Stop()
		return nil, err
	}
	ping, err := router.Start("arping", "-i", iface, "-W", "0.1", addr.String())
	if err != nil {
		_ = dump.Stop()
		return nil, err
	}
	return &ARPWatch{dump: dump, ping: ping}, nil
}

// Stop ends the watch and sums it up.
func (w *ARPWatch) Stop() ARPStats {
	_ = w.ping.Stop()
	time.Sleep(200 * time.Millisecond) // the last replies
	_ = w.dump.Stop()
	return parseARPCapture(w.dump.Output())
}

var (
	arpRequestRE = regexp.MustCompile(`Request who-has (\S+) tell (\S+),`)
	arpReplyRE   = regexp.MustCompile(`Reply (\S+) is-at ([0-9a-fA-F:]{17})`)
)

// parseARPCapture reads tcpdump -e lines: each request (not a gratuitous
// one) opens a window, and every reply until the next request answers it.
func parseARPCapture(out string) ARPStats {
	var s ARPStats
	var windows [][]string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if m := arpRequestRE.FindStringSubmatch(line); m != nil {
			if m[1] != m[2] {
				windows = append(windows, nil)
			}
			continue
		}
		m := arpReplyRE.FindStringSubmatch(line)
		if m == nil || len(windows) == 0 {
			continue
		}
		mac := strings.ToLower(m[2])
		w := &windows[len(windows)-1]
		if !contains(*w, mac) {
			*w = append(*w, mac)
		}
		if !seen[mac] {
			seen[mac] = true
			s.MACs = append(s.MACs, mac)
		}
	}
	last := ""
	for _, macs := range windows {
		switch {
		case len(macs) == 0:
			s.Unanswered++
		case len(macs) > 1:
			s.Dual++
		}
		for _, mac := range macs {
			if last != "" && mac != last {
				s.Moves++
			}
			last = mac
		}
	}
	s.Requests = len(windows)
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
