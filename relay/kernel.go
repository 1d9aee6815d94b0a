package relay

// KernelOptions configures the kernel data path: new UDP flows whose
// Maglev owner the kernel can reach without the relay (same address family,
// no PROXY header) are translated by nftables DNAT on the node instead of
// passing through the relay's sockets. Placement is the same Maglev table
// and the same hash (HashKey is the kernel's jhash), so a flow lands on the
// same backend either way and on every node.
type KernelOptions struct {
	// Enabled turns the kernel data path on for every UDP listener.
	Enabled bool
	// TablePrefix names the relay's nftables table; the relay appends a
	// unique suffix. Default DefaultKernelTablePrefix. RemoveKernelTables
	// deletes what an earlier process left behind.
	TablePrefix string
	// CtMark is the conntrack mark bit that tags the relay's flows (for
	// masquerading, counting and flushing); default DefaultKernelCtMark.
	CtMark uint32
}

// Kernel data path defaults.
const (
	DefaultKernelTablePrefix = "pier_relay"
	DefaultKernelCtMark      = 0x00100000
)
