package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

var (
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
)

// TestRunFollowsTheSecret runs a server and lets another replica rotate the
// certificate: the server must present the new one, learning of it through
// its watch on the Secret (its own check interval never elapses).
func TestRunFollowsTheSecret(t *testing.T) {
	kube := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	addr := freeLoopbackAddr(t)
	opts := Options{
		Kube: kube, Objects: StaticReader{}, Namespace: testNS,
		URL: "https://" + addr, ListenAddress: addr, CertValidity: testValidity,
		CheckInterval: 24 * time.Hour, Clock: clk, Logger: testLogger(t),
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	first := waitPresented(t, kube, clk, addr, nil)
	if err := s.ReadyCheck(nil); err != nil {
		t.Errorf("ReadyCheck while serving: %v", err)
	}

	other, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	clk.Step(2*time.Hour + time.Minute)
	if err := other.rot.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Step(publishDelay)
	if err := other.rot.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitPresented(t, kube, clk, addr, first)
}

// waitPresented waits until the server at addr presents a certificate,
// other than not if given, that the stored CA bundle trusts.
func waitPresented(t *testing.T, kube *fake.Clientset, clk *clocktesting.FakeClock, addr string, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	var got *x509.Certificate
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		sec, err := kube.CoreV1().Secrets(testNS).Get(ctx, DefaultSecretName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(sec.Data[keyCABundle])
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Time: clk.Now})
		if err != nil {
			return false, nil
		}
		defer conn.Close()
		got = conn.ConnectionState().PeerCertificates[0]
		return not == nil || !got.Equal(not), nil
	})
	if err != nil {
		t.Fatalf("server never presented a trusted new certificate: %v", err)
	}
	return got
}

func TestRunFailsWhenTheAddressIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Options{
		Kube: fake.NewClientset(), Objects: StaticReader{}, Namespace: testNS,
		URL: "https://127.0.0.1", ListenAddress: ln.Addr().String(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "webhook listen on "+ln.Addr().String()) {
		t.Errorf("Run = %v, want a listen error naming the address", err)
	}
}
