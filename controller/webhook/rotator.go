package webhook

// Rotation without a window of distrust. Every replica serves the pair in
// tls.crt/tls.key of one Secret; ca.crt is the bundle of trusted CAs and is
// copied into the caBundle of every webhook of the configuration. Each
// issuance creates a new CA (whose key is then dropped) and a serving
// certificate it signs. When the serving certificate has less than a third
// of its lifetime left:
//
//  1. the new pair is stored in next.crt/next.key and its CA is appended to
//     ca.crt, which is copied to the caBundle; the old pair is still served,
//     and the old CA stays in the bundle until it expires;
//  2. publishDelay later, when the API servers have long seen the new
//     caBundle, the next pair replaces tls.crt/tls.key and every replica
//     switches to it when it sees the Secret change.
//
// So whichever certificate a replica serves, the API server trusts it. Only
// when no servable pair exists at all (first start, names changed, expired
// during a long outage) is a pair issued and served at once.
//
// Replicas share the Secret through optimistic concurrency: each computes
// the next state from what it read and writes it with that resourceVersion
// (or creates it); on Conflict or AlreadyExists it reads the winner's state
// and starts over, so all end up with the same CAs.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// Keys of the certificate Secret.
const (
	keyCABundle = "ca.crt"
	keyCert     = corev1.TLSCertKey
	keyKey      = corev1.TLSPrivateKeyKey
	keyNextCert = "next.crt"
	keyNextKey  = "next.key"
)

// publishDelay is how long a new CA is in the bundle before the certificate
// it signed is served. API servers see configuration changes within seconds.
const publishDelay = 2 * time.Minute

// retryInterval bounds the wait before retrying a failed sync.
const retryInterval = 10 * time.Second

// certState is what the Secret holds.
type certState struct {
	bundle        []*x509.Certificate
	current, next *servingPair
}

func decodeState(data map[string][]byte) certState {
	st := certState{bundle: parseBundle(data[keyCABundle])}
	st.current, _ = parsePair(data[keyCert], data[keyKey])
	st.next, _ = parsePair(data[keyNextCert], data[keyNextKey])
	return st
}

func (st certState) encode() map[string][]byte {
	data := map[string][]byte{keyCABundle: encodeBundle(st.bundle)}
	if st.current != nil {
		data[keyCert], data[keyKey] = st.current.certPEM, st.current.keyPEM
	}
	if st.next != nil {
		data[keyNextCert], data[keyNextKey] = st.next.certPEM, st.next.keyPEM
	}
	return data
}

// plan returns the state to store at now: a servable current pair, a next
// pair when the current one is due for rotation, and the CAs not expired.
func (st certState) plan(now time.Time, validity time.Duration, names certNames) (certState, error) {
	if st.next != nil && servable(st.next, st.bundle, names, now) != nil {
		st.next = nil
	}
	currentOK := servable(st.current, st.bundle, names, now) == nil
	switch {
	case !currentOK && st.next != nil:
		st.current, st.next = st.next, nil
	case !currentOK:
		ca, pair, err := issue(now, validity, names)
		if err != nil {
			return st, err
		}
		st.bundle, st.current = append(st.bundle, ca), pair
	case st.next != nil && !now.Before(st.next.issued().Add(publishDelay)):
		st.current, st.next = st.next, nil
	}
	if st.next == nil && dueForRotation(st.current, now) {
		ca, pair, err := issue(now, validity, names)
		if err != nil {
			return st, err
		}
		st.bundle, st.next = append(st.bundle, ca), pair
	}
	st.bundle = unexpired(st.bundle, now)
	return st, nil
}

// dueForRotation: less than a third of the pair's lifetime is left.
func dueForRotation(p *servingPair, now time.Time) bool {
	lifetime := p.leaf.NotAfter.Sub(p.issued())
	return p.leaf.NotAfter.Sub(now) < lifetime/3
}

// unexpired drops expired and repeated CAs, keeping the order.
func unexpired(cas []*x509.Certificate, now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, ca := range cas {
		if !now.Before(ca.NotAfter) || containsCert(out, ca) {
			continue
		}
		out = append(out, ca)
	}
	return out
}

func containsCert(cas []*x509.Certificate, c *x509.Certificate) bool {
	for _, ca := range cas {
		if ca.Equal(c) {
			return true
		}
	}
	return false
}

// rotator keeps the Secret, the caBundle and the served certificate current.
type rotator struct {
	kube                  kubernetes.Interface
	namespace, secretName string
	configurationName     string
	names                 certNames
	validity              time.Duration
	clock                 clock.Clock
	log                   *slog.Logger
	metrics               *Metrics
	configuration         func(caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration
	served                atomic.Pointer[tls.Certificate]
}

// getCertificate is tls.Config.GetCertificate.
func (r *rotator) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.served.Load()
	if c == nil {
		return nil, fmt.Errorf("webhook serving certificate not loaded yet")
	}
	return c, nil
}

// run syncs every interval, whenever trigger fires, and sooner after a
// failure, until ctx ends.
func (r *rotator) run(ctx context.Context, interval time.Duration, trigger <-chan struct{}) {
	for {
		wait := interval
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("sync webhook certificate", "err", err)
			wait = min(wait, retryInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(wait):
		case <-trigger:
		}
	}
}

// sync brings the Secret to the planned state, serves its current pair and
// copies its bundle into the configuration.
func (r *rotator) sync(ctx context.Context) error {
	st, err := r.syncSecret(ctx)
	if err != nil {
		return err
	}
	if err := r.serve(st.current); err != nil {
		return err
	}
	return r.syncConfiguration(ctx, encodeBundle(st.bundle))
}

func (r *rotator) syncSecret(ctx context.Context) (certState, error) {
	secrets := r.kube.CoreV1().Secrets(r.namespace)
	for attempt := 1; ; attempt++ {
		sec, err := secrets.Get(ctx, r.secretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sec, err = nil, nil
		}
		if err != nil {
			return certState{}, fmt.Errorf("get secret %s/%s: %w", r.namespace, r.secretName, err)
		}
		var data map[string][]byte
		if sec != nil {
			data = sec.Data
		}
		st, err := decodeState(data).plan(r.clock.Now(), r.validity, r.names)
		if err != nil {
			return certState{}, fmt.Errorf("issue webhook certificate: %w", err)
		}
		want := st.encode()
		if sameData(data, want) {
			return st, nil
		}
		err = r.writeSecret(ctx, sec, want)
		if err == nil {
			r.logChange(decodeState(data), st)
			return st, nil
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 5 {
			r.log.Debug("certificate secret written concurrently, reading it back", "err", err)
			continue
		}
		return certState{}, fmt.Errorf("write secret %s/%s: %w", r.namespace, r.secretName, err)
	}
}

func (r *rotator) writeSecret(ctx context.Context, sec *corev1.Secret, data map[string][]byte) error {
	secrets := r.kube.CoreV1().Secrets(r.namespace)
	if sec == nil {
		_, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: r.secretName, Namespace: r.namespace, Labels: labels()},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		}, metav1.CreateOptions{})
		return err
	}
	upd := sec.DeepCopy()
	for _, k := range []string{keyCABundle, keyCert, keyKey, keyNextCert, keyNextKey} {
		delete(upd.Data, k)
	}
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	for k, v := range data {
		upd.Data[k] = v
	}
	_, err := secrets.Update(ctx, upd, metav1.UpdateOptions{})
	return err
}

// sameData compares only the keys the rotator owns.
func sameData(have, want map[string][]byte) bool {
	for _, k := range []string{keyCABundle, keyCert, keyKey, keyNextCert, keyNextKey} {
		h, hok := have[k]
		w, wok := want[k]
		if hok != wok || !bytes.Equal(h, w) {
			return false
		}
	}
	return true
}

func (r *rotator) logChange(old, st certState) {
	switch {
	case old.current == nil || !old.current.leaf.Equal(st.current.leaf):
		r.log.Info("webhook serving certificate replaced", "expires", st.current.leaf.NotAfter, "cas", len(st.bundle))
	case st.next != nil && (old.next == nil || !old.next.leaf.Equal(st.next.leaf)):
		r.log.Info("next webhook certificate published", "serve_after", st.next.issued().Add(publishDelay), "cas", len(st.bundle))
	default:
		r.log.Info("webhook CA bundle updated", "cas", len(st.bundle))
	}
}

// serve makes p the certificate new TLS connections get.
func (r *rotator) serve(p *servingPair) error {
	if old := r.served.Load(); old != nil && old.Leaf.Equal(p.leaf) {
		return nil
	}
	c, err := p.tlsCertificate()
	if err != nil {
		return fmt.Errorf("load webhook certificate: %w", err)
	}
	r.served.Store(c)
	r.metrics.certExpiry.Set(float64(p.leaf.NotAfter.Unix()))
	r.log.Debug("serving webhook certificate", "expires", p.leaf.NotAfter)
	return nil
}

// syncConfiguration creates the configuration when absent and otherwise sets
// the caBundle of each of its webhooks, leaving the rest as an administrator
// or the install manifests left it.
func (r *rotator) syncConfiguration(ctx context.Context, bundle []byte) error {
	api := r.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		cur, err := api.Get(ctx, r.configurationName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = api.Create(ctx, r.configuration(bundle), metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		upd := cur.DeepCopy()
		changed := false
		for i := range upd.Webhooks {
			if !bytes.Equal(upd.Webhooks[i].ClientConfig.CABundle, bundle) {
				upd.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
			}
		}
		if !changed {
			return nil
		}
		_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set caBundle of ValidatingWebhookConfiguration %s: %w", r.configurationName, err)
	}
	return nil
}

func labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "pier", "app.kubernetes.io/component": "webhook"}
}
