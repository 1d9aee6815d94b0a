package webhook

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// TestSlowClientDropped: a client that sends its headers and then dribbles
// (here: stops sending) the body must not hold a connection and a handler
// goroutine forever. The server answers or closes the connection within
// its read timeout (1 s here); the test allows 60 s.
func TestSlowClientDropped(t *testing.T) {
	addr := freeLoopbackAddr(t)
	s, err := New(Options{
		Kube: fake.NewClientset(), Objects: StaticReader{}, Namespace: testNS,
		URL: "https://" + addr, ListenAddress: addr, Logger: testLogger(t),
		ReadTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	var conn *tls.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiVersion\":", Path, addr)
	began := time.Now()
	if err := conn.SetReadDeadline(began.Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	switch {
	case err == nil:
		resp.Body.Close()
		t.Logf("answered %d after %v", resp.StatusCode, time.Since(began).Round(time.Millisecond))
	case isTimeout(err):
		t.Fatalf("the server still held the stalled request after %v", time.Since(began).Round(time.Second))
	default:
		t.Logf("connection closed after %v: %v", time.Since(began).Round(time.Millisecond), err)
	}
}

func isTimeout(err error) bool {
	te, ok := err.(interface{ Timeout() bool })
	return ok && te.Timeout()
}
