package lab

import (
	"strings"
	"time"
)

// SameBirdSessions compares two `birdc show protocols` outputs: the same
// protocols, states and infos, and each "since" within 100 ms of the other
// (BIRD renders the same instant a millisecond apart now and then; a session
// that went down and up again moves it by seconds).
func SameBirdSessions(before, after string) bool {
	b, a := birdSessions(before), birdSessions(after)
	if len(b) != len(a) || len(b) == 0 {
		return false
	}
	for name, x := range b {
		y, ok := a[name]
		if !ok || x.state != y.state || x.info != y.info || (x.since-y.since).Abs() > 100*time.Millisecond {
			return false
		}
	}
	return true
}

type birdSession struct {
	state, info string
	since       time.Duration // time of day
}

// birdSessions reads the protocol lines of `birdc show protocols`: name,
// protocol, table, state, since (hh:mm:ss.mmm), info.
func birdSessions(out string) map[string]birdSession {
	m := map[string]birdSession{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "Name" {
			continue
		}
		since, err := time.Parse("15:04:05.000", f[4])
		if err != nil {
			continue
		}
		m[f[0]] = birdSession{state: f[3], info: strings.Join(f[5:], " "),
			since: time.Duration(since.Hour())*time.Hour + time.Duration(since.Minute())*time.Minute +
				time.Duration(since.Second())*time.Second + time.Duration(since.Nanosecond())}
	}
	return m
}
