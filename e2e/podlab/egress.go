package podlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// egress is the API server's way into the lab. The API server runs in the
// root namespace, which has no route to Pod addresses; for traffic the
// Kubernetes egress selector calls "cluster" (admission webhooks served by
// Pods, kubelets for logs and exec) it sends an HTTP CONNECT to this proxy
// on a Unix socket, which dials the target from inside the lab's management
// host. (A TCP transport without TLS makes kube-apiserver v1.37.2 panic at
// start: it reads the absent TLS settings.)
type egress struct {
	ln   net.Listener
	mu   sync.Mutex
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func startEgress(dir string) (*egress, error) {
	ln, err := net.Listen("unix", filepath.Join(dir, "egress.sock"))
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	e := &egress{ln: ln}
	go func() { _ = http.Serve(ln, e) }()
	return e, nil
}

// setDialer makes the proxy dial through d (the management host's Dial).
func (e *egress) setDialer(d func(ctx context.Context, network, addr string) (net.Conn, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dial = d
}

func (e *egress) Close() error { return e.ln.Close() }

// writeConfig writes the API server's EgressSelectorConfiguration and
// returns its path.
func (e *egress) writeConfig(dir string) (string, error) {
	path := filepath.Join(dir, "egress-selector.yaml")
	cfg := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, e.ln.Addr())
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func (e *egress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	e.mu.Lock()
	dial := e.dial
	e.mu.Unlock()
	if dial == nil {
		http.Error(w, "lab not ready", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	up, err := dial(ctx, "tcp", r.Host)
	cancel()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		c.Close()
		up.Close()
		return
	}
	go pipe(up, c, buf.Reader)
}

// pipe copies both ways until either side is done, then closes both.
func pipe(up, down net.Conn, pending *bufio.Reader) {
	defer up.Close()
	defer down.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, pending); done <- struct{}{} }()
	go func() { _, _ = io.Copy(down, up); done <- struct{}{} }()
	<-done
}
