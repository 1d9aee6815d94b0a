package podlab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseARPCapture(t *testing.T) {
	out := `tcpdump: verbose output suppressed
listening on eth1, link-type EN10MB (Ethernet), snapshot length 262144 bytes
12:00:00.000 5e:88:57:d8:32:b5 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.200 tell 198.51.100.1, length 28
12:00:00.001 02:00:00:00:00:01 > 5e:88:57:d8:32:b5, ethertype ARP (0x0806), length 42: Reply 198.51.100.200 is-at 02:00:00:00:00:01, length 28
12:00:00.100 5e:88:57:d8:32:b5 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.200 tell 198.51.100.1, length 28
12:00:00.200 5e:88:57:d8:32:b5 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.200 tell 198.51.100.1, length 28
12:00:00.201 02:00:00:00:00:01 > 5e:88:57:d8:32:b5, ethertype ARP (0x0806), length 42: Reply 198.51.100.200 is-at 02:00:00:00:00:01, length 28
12:00:00.201 02:00:00:00:00:02 > 5e:88:57:d8:32:b5, ethertype ARP (0x0806), length 42: Reply 198.51.100.200 is-at 02:00:00:00:00:02, length 28
12:00:00.250 02:00:00:00:00:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.200 tell 198.51.100.200, length 28
12:00:00.300 5e:88:57:d8:32:b5 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.200 tell 198.51.100.1, length 28
12:00:00.301 02:00:00:00:00:02 > 5e:88:57:d8:32:b5, ethertype ARP (0x0806), length 42: Reply 198.51.100.200 is-at 02:00:00:00:00:02, length 28
`
	want := ARPStats{Requests: 4, Unanswered: 1, Dual: 1, Moves: 1,
		MACs: []string{"02:00:00:00:00:01", "02:00:00:00:00:02"}}
	if diff := cmp.Diff(want, parseARPCapture(out)); diff != "" {
		t.Errorf("parseARPCapture (-want +got):\n%s", diff)
	}
}
