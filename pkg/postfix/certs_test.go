package postfix_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// pki is a root CA, an intermediate CA it signed and a leaf the intermediate
// signed, all ECDSA P-256, made in the test.
type pki struct {
	root, inter, leaf          *x509.Certificate
	rootKey, interKey, leafKey crypto.Signer
}

// pkiOptions change the generated hierarchy.
type pkiOptions struct {
	leafNames      []string  // dNSNames of the leaf; default {"mail.example.test"}
	leafCN         string    // default the first leaf name
	leafNotAfter   time.Time // default in 30 days
	interNotAfter  time.Time // default in 5 years
	interNotBefore time.Time // default an hour ago
}

func newPKI(t testing.TB, o pkiOptions) *pki {
	t.Helper()
	now := time.Now()
	if o.leafNames == nil {
		o.leafNames = []string{"mail.example.test"}
	}
	if o.leafCN == "" && len(o.leafNames) > 0 {
		o.leafCN = o.leafNames[0]
	}
	if o.leafNotAfter.IsZero() {
		o.leafNotAfter = now.Add(30 * 24 * time.Hour)
	}
	if o.interNotAfter.IsZero() {
		o.interNotAfter = now.Add(5 * 365 * 24 * time.Hour)
	}
	if o.interNotBefore.IsZero() {
		o.interNotBefore = now.Add(-time.Hour)
	}
	p := &pki{}
	p.root, p.rootKey = issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "danehook test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	p.inter, p.interKey = issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "danehook test intermediate"},
		NotBefore:             o.interNotBefore,
		NotAfter:              o.interNotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root, p.rootKey)
	p.leaf, p.leafKey = issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.leafCN},
		DNSNames:    o.leafNames,
		NotBefore:   now.Add(-2 * time.Hour),
		NotAfter:    o.leafNotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, p.interKey)
	return p
}

// issue signs tmpl with parent/parentKey, or self-signs it when parent is
// nil, with a fresh P-256 key.
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// keyPEM encodes key as PKCS#8 PEM.
func keyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// certsPEM concatenates the certificates as PEM, in order.
func certsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// record computes the TLSA record of cert.
func record(t testing.TB, cert *x509.Certificate, usage, selector, mtype uint8) tlsa.Record {
	t.Helper()
	r, err := tlsa.FromCertificate(cert, usage, selector, mtype)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// spki is the lower-case hex SHA-256 of cert's SubjectPublicKeyInfo.
func spki(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}

// parseCertsPEM parses every CERTIFICATE block of b.
func parseCertsPEM(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}
