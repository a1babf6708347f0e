package tlsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// keyKinds are the key algorithms every computation is tested with.
var keyKinds = []string{"rsa2048", "p256", "p384", "ed25519"}

// newKey makes a private key of kind (see keyKinds).
func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", kind, err)
	}
	return k
}

// certOpts describes a test certificate.
type certOpts struct {
	cn        string
	ca        bool
	notBefore time.Time
	notAfter  time.Time
	dns       []string
}

// newCert issues a certificate for key signed by parent/parentKey, or
// self-signed when parent is nil.
func newCert(t testing.TB, key crypto.Signer, o certOpts, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.cn},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		DNSNames:              o.dns,
		BasicConstraintsValid: true,
		IsCA:                  o.ca,
	}
	if o.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatalf("create certificate %q: %v", o.cn, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate %q: %v", o.cn, err)
	}
	return c
}

// pki is a root, an intermediate and a leaf with their keys.
type pki struct {
	rootKey, intKey, leafKey crypto.Signer
	root, inter, leaf        *x509.Certificate
}

// newPKI makes a three-level PKI with P-256 keys; the leaf is for
// mail.example.com.
func newPKI(t testing.TB) pki {
	t.Helper()
	var p pki
	p.rootKey, p.intKey, p.leafKey = newKey(t, "p256"), newKey(t, "p256"), newKey(t, "p256")
	p.root = newCert(t, p.rootKey, certOpts{cn: "Test Root", ca: true}, nil, nil)
	p.inter = newCert(t, p.intKey, certOpts{cn: "Test Intermediate", ca: true}, p.root, p.rootKey)
	p.leaf = newCert(t, p.leafKey, certOpts{cn: "mail.example.com", dns: []string{"mail.example.com"}}, p.inter, p.intKey)
	return p
}

// mustRecord computes a record from cert or fails the test.
func mustRecord(t testing.TB, cert *x509.Certificate, u, s, m uint8) Record {
	t.Helper()
	r, err := FromCertificate(cert, u, s, m)
	if err != nil {
		t.Fatalf("FromCertificate(%d %d %d): %v", u, s, m, err)
	}
	return r
}
