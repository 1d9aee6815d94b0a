package relay

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// kernelCollector reads the kernel data path's counters and flows at
// scrape time; it reports nothing while the path is off.
type kernelCollector struct {
	mu    sync.Mutex
	path  KernelPath
	ports map[string]uint16 // listener name to port

	packets, bytes, flows, placed, refused *prometheus.Desc
}

func newKernelCollector() *kernelCollector {
	l := []string{"listener"}
	ld := []string{"listener", "direction"}
	return &kernelCollector{
		packets: prometheus.NewDesc("pier_relay_kernel_packets_total",
			"Datagrams of the flows the kernel data path placed, by direction (in: client to backend).", ld, nil),
		bytes: prometheus.NewDesc("pier_relay_kernel_bytes_total",
			"IP bytes of the flows the kernel data path placed, by direction.", ld, nil),
		flows: prometheus.NewDesc("pier_relay_kernel_active_flows",
			"Flows the kernel data path placed that conntrack still holds.", l, nil),
		placed: prometheus.NewDesc("pier_relay_kernel_flows_total",
			"New flows the kernel data path placed.", l, nil),
		refused: prometheus.NewDesc("pier_relay_kernel_refused_flows_total",
			"New flows the kernel data path dropped because the listener's flow limit was reached.", l, nil),
	}
}

func (k *kernelCollector) set(p KernelPath, ports map[string]uint16) {
	k.mu.Lock()
	k.path, k.ports = p, ports
	k.mu.Unlock()
}

func (k *kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.packets, k.bytes, k.flows, k.placed, k.refused} {
		ch <- d
	}
}

func (k *kernelCollector) Collect(ch chan<- prometheus.Metric) {
	k.mu.Lock()
	p, ports := k.path, k.ports
	k.mu.Unlock()
	if p == nil {
		return
	}
	counters, err := p.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(k.packets, err)
		return
	}
	flows, err := p.Flows()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(k.flows, err)
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, c := range counters {
		counter(k.packets, c.PacketsIn, name, dirIn)
		counter(k.packets, c.PacketsOut, name, dirOut)
		counter(k.bytes, c.BytesIn, name, dirIn)
		counter(k.bytes, c.BytesOut, name, dirOut)
		counter(k.placed, c.NewFlows, name)
		counter(k.refused, c.Refused, name)
		ch <- prometheus.MustNewConstMetric(k.flows, prometheus.GaugeValue, float64(flows[ports[name]]), name)
	}
}
