package install

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
)

// TestSpeakerRunsOnItsRBAC runs the real pier-speaker with a token of its
// ServiceAccount: its API view must sync (a cache of Secrets outside
// pier-bgp-passwords would be refused and never sync), and a BGPPeer gets
// the TCP MD5 password from a Secret in pier-bgp-passwords. The peer is a
// closed port on loopback: the session only has to start, not come up.
func TestSpeakerRunsOnItsRBAC(t *testing.T) {
	kubectl := kubectlPath(t)
	c := cluster.ForTest(t, cluster.Options{})
	applyBase(t, c)
	bins, err := kubelab.BuildBinaries(t.TempDir(), "pier-speaker")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := serviceAccountKubeconfig(t, c, "pier-speaker")
	peerPort, gossipPort := freePort(t), freePort(t)
	objs := fmt.Sprintf(`apiVersion: v1
kind: Node
metadata: {name: node1}
---
apiVersion: v1
kind: Secret
metadata: {name: r1-md5, namespace: %s}
stringData: {password: lab-md5-key}
---
apiVersion: v1
kind: Secret
metadata: {name: someone-elses, namespace: %s}
stringData: {token: not-for-speakers}
---
apiVersion: pier.dev/v1alpha1
kind: BGPPeer
metadata: {name: r1, namespace: %s}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 127.0.0.1, peerPort: %d, passwordSecret: {name: r1-md5}}
`, pwNS, sys, sys, peerPort)
	run(t, []byte(objs), kubectl, kubeArgs(c, "apply", "--server-side", "-f", "-")...)

	dir := t.TempDir()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs lab.SyncBuffer
	cmd := exec.CommandContext(ctx, bins["pier-speaker"], "--kubeconfig", kubeconfig, "--namespace", sys,
		"--bgp-password-namespace="+pwNS, "--node-name=node1", "--bind-addr=127.0.0.1",
		fmt.Sprintf("--bind-port=%d", gossipPort), "--memberlist-key-file="+filepath.Join(dir, "key"),
		"--state-dir="+dir, "--metrics-addr=0")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pier-speaker log:\n%s", logs.String())
		}
	})

	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), "API view synced"), nil
	})
	if err != nil {
		t.Fatalf("the speaker's API view never synced on its own RBAC: %v", err)
	}
	// The session's status: started with its password, not waiting for it.
	var lastErr string
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := tryRun(nil, kubectl, kubeArgs(c, "get", "bgpsessionstatus", "r1-node1", "--namespace", sys,
			"-o", "jsonpath={.status.peerAddress} {.status.lastError}")...)
		got := strings.TrimSpace(string(out))
		lastErr = got
		return err == nil && strings.HasPrefix(got, "127.0.0.1") && !strings.Contains(got, "password"), nil
	})
	if err != nil {
		t.Errorf("BGPSessionStatus r1-node1 = %q, want a session started with the password from %s/r1-md5: %v", lastErr, pwNS, err)
	}
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("pier-speaker was refused something:\n%s", logs.String())
	}
}

// freePort is a TCP port on loopback that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
