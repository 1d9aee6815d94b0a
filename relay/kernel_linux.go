package relay

// RemoveKernelTables deletes the nftables tables whose names start with
// prefix: those an earlier relay process left behind (a SIGKILLed relay
// cannot delete its own). Flows already translated keep going: their NAT
// lives in conntrack, not in the table.
func RemoveKernelTables(prefix string) error { return nil }

func (r *Relay) openKernel() error { return nil }
