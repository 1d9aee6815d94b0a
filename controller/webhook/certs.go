package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate is how far before its issue a certificate becomes valid, for
// clocks that lag behind the issuer's.
const backdate = 5 * time.Minute

// certNames are the subject alternative names of the serving certificate.
type certNames struct {
	DNS []string
	IPs []net.IP
}

func (n certNames) hosts() []string {
	hosts := append([]string(nil), n.DNS...)
	for _, ip := range n.IPs {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

// servingPair is a serving certificate with its key, as PEM and parsed.
type servingPair struct {
	leaf    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

// issued reports when the pair was created (NotBefore is backdated).
func (p *servingPair) issued() time.Time { return p.leaf.NotBefore.Add(backdate) }

// tlsCertificate is the pair ready for tls.Config.GetCertificate.
func (p *servingPair) tlsCertificate() (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		return nil, err
	}
	c.Leaf = p.leaf
	return &c, nil
}

// issue creates a new CA and a serving certificate it signs, both valid from
// now (backdated) for validity. The CA's key is dropped once the serving
// certificate is signed: nothing can sign with it later, so it is never
// stored. Each rotation therefore brings a new CA.
func issue(now time.Time, validity time.Duration, names certNames) (*x509.Certificate, *servingPair, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl, err := template(now, validity, pkix.Name{CommonName: fmt.Sprintf("pier-webhook-ca@%d", now.Unix())})
	if err != nil {
		return nil, nil, err
	}
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.MaxPathLenZero = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	pair, err := issueServing(now, validity, names, ca, caKey)
	if err != nil {
		return nil, nil, err
	}
	return ca, pair, nil
}

func issueServing(now time.Time, validity time.Duration, names certNames, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*servingPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl, err := template(now, validity, pkix.Name{CommonName: names.hosts()[0]})
	if err != nil {
		return nil, err
	}
	tmpl.DNSNames = names.DNS
	tmpl.IPAddresses = names.IPs
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return parsePair(encodeCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

func template(now time.Time, validity time.Duration, subject pkix.Name) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
	}, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// parsePair checks that the key matches the certificate.
func parsePair(certPEM, keyPEM []byte) (*servingPair, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, err
	}
	return &servingPair{leaf: leaf, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// parseBundle returns the certificates in a PEM bundle, skipping anything
// that does not parse.
func parseBundle(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func encodeBundle(cas []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range cas {
		buf.Write(encodeCert(c.Raw))
	}
	return buf.Bytes()
}

var errNotServable = errors.New("certificate not servable")

// servable checks that p is valid at now, covers names and chains to one of
// the CAs in bundle.
func servable(p *servingPair, bundle []*x509.Certificate, names certNames, now time.Time) error {
	if p == nil {
		return fmt.Errorf("%w: none", errNotServable)
	}
	pool := x509.NewCertPool()
	for _, ca := range bundle {
		pool.AddCert(ca)
	}
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := p.leaf.Verify(opts); err != nil {
		return fmt.Errorf("%w: %w", errNotServable, err)
	}
	for _, h := range names.hosts() {
		if err := p.leaf.VerifyHostname(h); err != nil {
			return fmt.Errorf("%w: %w", errNotServable, err)
		}
	}
	return nil
}
