package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// WriteJSON writes s as indented JSON.
func (s Status) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText writes s as aligned tables; ages are relative to now.
func (s Status) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	writeComponents(tw, s)
	section(tw, "POOLS", "pools", s.Missing, len(s.Pools), "NAME\tAUTO-ASSIGN\tIPV4 USED/FREE\tIPV6 USED/FREE\tADDRESSES\tPROBLEM")
	for _, p := range s.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, yesNo(p.AutoAssign), p.IPv4, p.IPv6, list(p.Addresses), dash(p.Problem))
	}
	section(tw, "SERVICES", "", nil, len(s.Services), "NAMESPACE\tNAME\tADDRESSES\tPOOL\tL2 ANNOUNCED BY\tBGP ANNOUNCED BY (TO PEERS)")
	for _, svc := range s.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", svc.Namespace, svc.Name, pending(svc.Addresses), dash(svc.Pool),
			announcers(svc), bgpAnnouncers(svc))
	}
	section(tw, "L2 SPREAD", "servicel2statuses", s.Missing, len(s.L2Spread), "NODE\tL2 ADDRESSES\tSERVICES")
	for _, n := range s.L2Spread {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n.Node, n.Addresses, n.Services)
	}
	section(tw, "BGP SESSIONS", "bgpsessionstatuses", s.Missing, len(s.BGPSessions), "NODE\tPEER\tADDRESS\tSTATE\tBFD\tSINCE\tSENT\tRECEIVED\tLAST ERROR")
	for _, b := range s.BGPSessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", b.Node, b.Peer, b.PeerAddress, dash(b.State), dash(b.BFDState), age(b.Since, now),
			b.PrefixesSent, b.PrefixesReceived, dash(b.LastError))
	}
	writeConfiguration(tw, s)
	section(tw, "RELAYS", "relays", s.Missing, len(s.Relays), "NAMESPACE\tNAME\tEXPOSURE\tDATA PATH\tADDRESSES\tREADY BACKENDS\tREADY RELAYS\tREADY")
	for _, r := range s.Relays {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Namespace, r.Name, r.Exposure, r.DataPath, pending(r.Addresses), r.ReadyBackends, r.ReadyRelays, dash(r.Ready))
	}
	return tw.Flush()
}

// writeConfiguration lists the node daemons that left configuration
// objects out, one row per problem; the nodes that took it all are
// counted.
func writeConfiguration(tw *tabwriter.Writer, s Status) {
	var failed []NodeConfiguration
	for _, c := range s.Configuration {
		if !c.Valid {
			failed = append(failed, c)
		}
	}
	rows, header := len(failed), "NODE\tCOMPONENT\tPROBLEM (OBJECT LEFT OUT)"
	if rows == 0 && len(s.Configuration) > 0 {
		rows, header = 1, fmt.Sprintf("every node took the whole configuration (%d status objects)", len(s.Configuration))
	}
	section(tw, "CONFIGURATION", "configurationstatuses", s.Missing, rows, header)
	for _, c := range failed {
		problems := c.Problems
		if len(problems) == 0 {
			problems = []string{"-"}
		}
		for i, p := range problems {
			node, comp := c.Node, c.Component
			if i > 0 {
				node, comp = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", node, comp, p)
		}
	}
}

// writeComponents writes one row per workload and one per Pod that is not
// Ready, naming its node and why.
func writeComponents(tw *tabwriter.Writer, s Status) {
	fmt.Fprintln(tw, "COMPONENTS")
	if len(s.Components) == 0 {
		fmt.Fprintf(tw, "(no Deployment or DaemonSet labelled %s in %s)\n", Selector, s.Namespace)
		return
	}
	fmt.Fprintln(tw, "NAME\tOBJECT\tREADY\tUP-TO-DATE\tPROBLEM")
	for _, c := range s.Components {
		fmt.Fprintf(tw, "%s\t%s/%s\t%d/%d\t%d\t%s\n", c.Name, strings.ToLower(c.Kind), c.Object, c.Ready, c.Desired, c.UpToDate, summary(c))
		for _, p := range c.Problems {
			fmt.Fprintf(tw, "\t\t\t\t%s on %s: %s\n", p.Pod, dash(p.Node), p.Why)
		}
	}
}

// summary is a component's PROBLEM column: "-" when all is well.
func summary(c Component) string {
	switch {
	case len(c.Problems) > 0:
		return fmt.Sprintf("%d Pod(s) not ready:", len(c.Problems))
	case c.Ready < c.Desired:
		return fmt.Sprintf("%d of %d not ready", c.Desired-c.Ready, c.Desired)
	}
	return "-"
}

// section starts a table; it says so when the section's CRD is missing or
// it has no rows. The blank line before every section but the first
// goes through the tabwriter so columns stay aligned per section.
func section(tw *tabwriter.Writer, title, resource string, missing []string, rows int, header string) {
	if title != "COMPONENTS" {
		tw.Flush()
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, title)
	for _, m := range missing {
		if resource != "" && strings.HasPrefix(m, resource+".") {
			fmt.Fprintf(tw, "(CRD %s not installed)\n", m)
			return
		}
	}
	if rows == 0 {
		fmt.Fprintln(tw, "(none)")
		return
	}
	fmt.Fprintln(tw, header)
}

func (u Usage) String() string {
	if u.Assigned == "" && u.Available == "" {
		return "-"
	}
	return dash(u.Assigned) + "/" + dash(u.Available)
}

func announcers(svc Service) string {
	if len(svc.Announcers) == 0 {
		return "-"
	}
	parts := make([]string, len(svc.Announcers))
	for i, a := range svc.Announcers {
		if a.NotAnnounced != "" {
			parts[i] = "not announced: " + notAnnounced(a.NotAnnounced) + " (" + a.Node + " would answer"
			if list(a.Addresses) != list(svc.Addresses) {
				parts[i] += " for " + list(a.Addresses)
			}
			parts[i] += ")"
			continue
		}
		s := a.Node
		if len(a.Interfaces) > 0 {
			s += " (" + list(a.Interfaces) + ")"
		}
		if list(a.Addresses) != list(svc.Addresses) {
			s += " for " + list(a.Addresses)
		}
		parts[i] = s
	}
	return strings.Join(parts, "; ")
}

// notAnnounced words a reason a Service is not announced.
func notAnnounced(reason string) string {
	if reason == v1alpha1.NotAnnouncedNoReadyEndpoints {
		return "no ready endpoints"
	}
	return reason
}

// bgpAnnouncers groups the nodes announcing the same addresses to the same
// peers: "node1,node2 to r1,r2".
func bgpAnnouncers(svc Service) string {
	if len(svc.BGPAnnouncers) == 0 {
		return "-"
	}
	var keys []string
	nodes := map[string][]string{}
	for _, a := range svc.BGPAnnouncers {
		k := "to " + dash(list(a.Peers))
		if list(a.Addresses) != list(svc.Addresses) {
			k += " for " + list(a.Addresses)
		}
		if a.NotAnnounced != "" {
			k = "would announce " + k + ": not announced, " + notAnnounced(a.NotAnnounced)
		}
		if _, ok := nodes[k]; !ok {
			keys = append(keys, k)
		}
		nodes[k] = append(nodes[k], a.Node)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = list(nodes[k]) + " " + k
	}
	return strings.Join(parts, "; ")
}

func age(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return duration.HumanDuration(now.Sub(*t))
}

func list(s []string) string { return strings.Join(s, ",") }

func pending(s []string) string {
	if len(s) == 0 {
		return "<pending>"
	}
	return list(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
