package lab

import "testing"

func TestSameBirdSessions(t *testing.T) {
	const before = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:37:08.265  
node1      BGP        ---        up     17:37:10.237  Established   
node2      BGP        ---        up     17:37:10.400  Established   
`
	for _, tc := range []struct {
		name, after string
		same        bool
	}{
		{"identical", before, true},
		{"since a millisecond off", `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:37:08.265  
node1      BGP        ---        up     17:37:10.238  Established   
node2      BGP        ---        up     17:37:10.400  Established   
`, true},
		{"session came back up", `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:37:08.265  
node1      BGP        ---        up     17:37:15.102  Established   
node2      BGP        ---        up     17:37:10.400  Established   
`, false},
		{"session down", `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:37:08.265  
node1      BGP        ---        start  17:37:10.237  Active   
node2      BGP        ---        up     17:37:10.400  Established   
`, false},
		{"session gone", `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:37:08.265  
node1      BGP        ---        up     17:37:10.237  Established   
`, false},
	} {
		if got := SameBirdSessions(before, tc.after); got != tc.same {
			t.Errorf("%s: sameBirdSessions = %v, want %v", tc.name, got, tc.same)
		}
	}
}
