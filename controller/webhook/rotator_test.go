package webhook

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testValidity = 3 * time.Hour

func newTestServer(t *testing.T, kube *fake.Clientset, clk *clocktesting.FakeClock) *Server {
	t.Helper()
	s, err := New(Options{
		Kube: kube, Objects: StaticReader{}, Namespace: testNS,
		URL: "https://127.0.0.1:9443", CertValidity: testValidity,
		Clock: clk, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot is what the API server and the replicas see at one moment.
type snapshot struct {
	served   *x509.Certificate   // the certificate the server presents
	bundle   []*x509.Certificate // caBundle of the configuration
	secret   map[string][]byte
	hasNext  bool
	bundleCN []string
}

func take(t *testing.T, s *Server, kube *fake.Clientset) snapshot {
	t.Helper()
	ctx := context.Background()
	if err := s.rot.sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	sec, err := kube.CoreV1().Secrets(testNS).Get(ctx, DefaultSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, DefaultConfigurationName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot{
		served:  s.rot.served.Load().Leaf,
		bundle:  parseBundle(vwc.Webhooks[0].ClientConfig.CABundle),
		secret:  sec.Data,
		hasNext: len(sec.Data[keyNextCert]) > 0,
	}
	for _, ca := range snap.bundle {
		snap.bundleCN = append(snap.bundleCN, ca.Subject.CommonName)
	}
	return snap
}

// trusted checks that the API server would accept the served certificate
// at now.
func (s snapshot) trusted(t *testing.T, now time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, ca := range s.bundle {
		pool.AddCert(ca)
	}
	if _, err := s.served.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("at %v the served certificate is not trusted by the caBundle: %v", now, err)
	}
}

func caName(at time.Time) string { return fmt.Sprintf("pier-webhook-ca@%d", at.Unix()) }

func TestRotation(t *testing.T) {
	kube := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	s := newTestServer(t, kube, clk)

	first := take(t, s, kube)
	first.trusted(t, clk.Now())
	if diff := cmp.Diff([]string{caName(t0)}, first.bundleCN); diff != "" {
		t.Fatalf("first bundle (-want +got):\n%s", diff)
	}
	if first.served.NotAfter != t0.Add(testValidity) {
		t.Errorf("first certificate expires %v, want %v", first.served.NotAfter, t0.Add(testValidity))
	}

	// Before two thirds of the lifetime: nothing changes.
	clk.Step(2*time.Hour - time.Minute)
	same := take(t, s, kube)
	if !same.served.Equal(first.served) || same.hasNext || len(same.bundle) != 1 {
		t.Fatalf("rotated too early: next %v, %d CAs", same.hasNext, len(same.bundle))
	}

	// Past two thirds: the next CA is published, the old pair still served.
	clk.Step(2 * time.Minute)
	t1 := clk.Now()
	published := take(t, s, kube)
	published.trusted(t, clk.Now())
	if !published.served.Equal(first.served) || !published.hasNext {
		t.Fatalf("phase 1: served changed %v, next %v; want old pair served and next stored",
			!published.served.Equal(first.served), published.hasNext)
	}
	if diff := cmp.Diff([]string{caName(t0), caName(t1)}, published.bundleCN); diff != "" {
		t.Fatalf("phase 1 bundle (-want +got):\n%s", diff)
	}

	// Just before the publish delay ends: still the old pair.
	clk.Step(publishDelay - time.Second)
	if waiting := take(t, s, kube); !waiting.served.Equal(first.served) {
		t.Fatal("new pair served before the publish delay")
	}

	// After the delay: the new pair is served, the old CA stays.
	clk.Step(time.Second)
	rotated := take(t, s, kube)
	rotated.trusted(t, clk.Now())
	if rotated.served.Equal(first.served) || rotated.hasNext {
		t.Fatalf("phase 2: served changed %v, next %v; want new pair served", !rotated.served.Equal(first.served), rotated.hasNext)
	}
	if diff := cmp.Diff([]string{caName(t0), caName(t1)}, rotated.bundleCN); diff != "" {
		t.Fatalf("phase 2 bundle (-want +got):\n%s", diff)
	}
	if got := rotated.served.NotAfter; got != t1.Add(testValidity) {
		t.Errorf("new certificate expires %v, want %v", got, t1.Add(testValidity))
	}

	// The old CA leaves the bundle when it expires.
	clk.SetTime(t0.Add(testValidity))
	pruned := take(t, s, kube)
	pruned.trusted(t, clk.Now())
	if diff := cmp.Diff([]string{caName(t1)}, pruned.bundleCN); diff != "" {
		t.Fatalf("bundle after the old CA expired (-want +got):\n%s", diff)
	}
}

func TestExpiredWhileDownIssuesAtOnce(t *testing.T) {
	kube := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	s := newTestServer(t, kube, clk)
	first := take(t, s, kube)
	clk.Step(2 * testValidity)
	now := take(t, s, kube)
	now.trusted(t, clk.Now())
	if now.served.Equal(first.served) || now.hasNext || len(now.bundle) != 1 {
		t.Fatalf("after expiry: want one fresh CA and pair, got %d CAs, next %v", len(now.bundle), now.hasNext)
	}
}

func TestReplicaUsesTheWinnersSecret(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)

	// Replica A creates the Secret first, in its own cluster view.
	kubeA := fake.NewClientset()
	a := take(t, newTestServer(t, kubeA, clk), kubeA)
	winner, err := kubeA.CoreV1().Secrets(testNS).Get(context.Background(), DefaultSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Replica B read "not found", then loses the create race to A.
	kube := fake.NewClientset()
	kube.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if err := kube.Tracker().Add(winner.DeepCopy()); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("secrets"), DefaultSecretName)
	})
	b := take(t, newTestServer(t, kube, clk), kube)
	if !b.served.Equal(a.served) {
		t.Error("replica B serves its own certificate, not the stored one")
	}
	if diff := cmp.Diff(a.bundleCN, b.bundleCN); diff != "" {
		t.Errorf("bundles differ (-A +B):\n%s", diff)
	}
}

func TestExistingConfigurationOnlyGetsCABundle(t *testing.T) {
	failurePolicy := admissionregistrationv1.Fail
	existing := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "a.pier.dev", FailurePolicy: &failurePolicy, ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("stale")}},
			{Name: "b.pier.dev", FailurePolicy: &failurePolicy},
		},
	}
	kube := fake.NewClientset(existing)
	s := newTestServer(t, kube, clocktesting.NewFakeClock(t0))
	if err := s.rot.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), DefaultConfigurationName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kube.CoreV1().Secrets(testNS).Get(context.Background(), DefaultSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := existing.DeepCopy()
	for i := range want.Webhooks {
		want.Webhooks[i].ClientConfig.CABundle = sec.Data[keyCABundle]
	}
	if diff := cmp.Diff(want.Webhooks, got.Webhooks); diff != "" {
		t.Errorf("webhooks (-want +got):\n%s", diff)
	}
}

func TestGarbageSecretIsReplaced(t *testing.T) {
	kube := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultSecretName, Namespace: testNS},
		Data:       map[string][]byte{keyCABundle: []byte("junk"), keyCert: []byte("junk"), "other": []byte("kept")},
	})
	clk := clocktesting.NewFakeClock(t0)
	s := newTestServer(t, kube, clk)
	snap := take(t, s, kube)
	snap.trusted(t, clk.Now())
	if string(snap.secret["other"]) != "kept" {
		t.Error("a key the rotator does not own was dropped")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	kube := fake.NewClientset()
	ok := Options{Kube: kube, Objects: StaticReader{}, Namespace: testNS, ServiceName: "pier-webhook"}
	tests := []struct {
		name   string
		change func(*Options)
	}{
		{"no kube", func(o *Options) { o.Kube = nil }},
		{"no reader", func(o *Options) { o.Objects = nil }},
		{"no namespace", func(o *Options) { o.Namespace = "" }},
		{"service and URL", func(o *Options) { o.URL = "https://127.0.0.1:9443" }},
		{"neither service nor URL", func(o *Options) { o.ServiceName = "" }},
		{"http URL", func(o *Options) { o.ServiceName, o.URL = "", "http://127.0.0.1:9443" }},
		{"URL with path", func(o *Options) { o.ServiceName, o.URL = "", "https://127.0.0.1:9443/x" }},
		{"short validity", func(o *Options) { o.CertValidity = time.Minute }},
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			if _, err := New(o); err == nil {
				t.Error("New accepted invalid options")
			}
		})
	}
}

func TestServiceModeNames(t *testing.T) {
	s, err := New(Options{Kube: fake.NewClientset(), Objects: StaticReader{}, Namespace: testNS, ServiceName: "pier-webhook"})
	if err != nil {
		t.Fatal(err)
	}
	want := certNames{DNS: []string{"pier-webhook.pier-system.svc", "pier-webhook.pier-system.svc.cluster.local"}}
	if diff := cmp.Diff(want, s.rot.names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	cc := s.configuration([]byte("ca")).Webhooks[0].ClientConfig
	if cc.URL != nil || cc.Service == nil || cc.Service.Name != "pier-webhook" || *cc.Service.Path != Path || *cc.Service.Port != 443 {
		t.Errorf("clientConfig = %+v", cc)
	}
}
