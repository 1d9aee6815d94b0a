package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// pki holds the files of a throwaway PKI: a CA, the API server's serving
// certificate, an admin client certificate in system:masters and the
// service-account signing key.
type pki struct {
	CACert, ServingCert, ServingKey  string
	AdminCert, AdminKey              string
	SAKey                            string // RSA, PEM; the API server derives the public half
	caPEM, adminCertPEM, adminKeyPEM []byte
	ca                               *x509.Certificate
	caKey                            *ecdsa.PrivateKey
}

func writePKI(dir string, serve []netip.Addr) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := certTemplate("pier-test-ca")
	caTmpl.IsCA = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caTmpl.BasicConstraintsValid = true
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	p := &pki{ca: ca, caKey: caKey}
	p.caPEM = pemBlock("CERTIFICATE", caDER)

	srvTmpl := certTemplate("kube-apiserver")
	srvTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	srvTmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	for _, a := range serve {
		srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	srvCert, srvKey, err := issue(srvTmpl, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue serving certificate: %w", err)
	}

	admTmpl := certTemplate("pier-admin")
	admTmpl.Subject.Organization = []string{"system:masters"}
	admTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	p.adminCertPEM, p.adminKeyPEM, err = issue(admTmpl, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue admin certificate: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	files := []struct {
		path *string
		name string
		data []byte
	}{
		{&p.CACert, "ca.crt", p.caPEM},
		{&p.ServingCert, "apiserver.crt", srvCert},
		{&p.ServingKey, "apiserver.key", srvKey},
		{&p.AdminCert, "admin.crt", p.adminCertPEM},
		{&p.AdminKey, "admin.key", p.adminKeyPEM},
		{&p.SAKey, "sa.key", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func certTemplate(cn string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// IssueClient returns a client certificate and key signed by the cluster's
// CA for user cn in groups orgs, as a kubelet's (system:node:NAME in
// system:nodes) or a component's.
func (c *Cluster) IssueClient(cn string, orgs ...string) (certPEM, keyPEM []byte, err error) {
	tmpl := certTemplate(cn)
	tmpl.Subject.Organization = orgs
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	certPEM, keyPEM, err = issue(tmpl, c.pki.ca, c.pki.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for %s: %w", cn, err)
	}
	return certPEM, keyPEM, nil
}
