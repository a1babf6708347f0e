package chain_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The helpers panic instead of taking a testing.TB so that Example
// functions can use them too; generating keys and certificates does not fail.

// ca is a certificate with its private key (for a cross-signed certificate,
// the key of the subject, shared with the self-signed original).
type ca struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newKey returns a fresh key: alg is "rsa" (2048 bits), "p256", "p384" or "ed25519".
func newKey(alg string) crypto.Signer {
	switch alg {
	case "rsa":
		return must(rsa.GenerateKey(rand.Reader, 2048))
	case "p256":
		return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	case "p384":
		return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	case "ed25519":
		_, k := must2(ed25519.GenerateKey(rand.Reader))
		return k
	}
	panic("unknown algorithm " + alg)
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

var serial atomic.Int64

func template(name string, isCA bool) *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"danehook test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
	}
	if isCA {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		t.DNSNames = []string{name}
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return t
}

func sign(tmpl *x509.Certificate, parent *ca, pub crypto.PublicKey) *x509.Certificate {
	p, key := tmpl, crypto.Signer(nil)
	if parent != nil {
		p, key = parent.Cert, parent.Key
	}
	if key == nil {
		panic("no signing key")
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, p, pub, key))
	return must(x509.ParseCertificate(der))
}

// newRoot makes a self-signed CA.
func newRoot(name, alg string) *ca {
	k := newKey(alg)
	tmpl := template(name, true)
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k))
	return &ca{Cert: must(x509.ParseCertificate(der)), Key: k}
}

// issueCA makes an intermediate CA signed by p.
func (p *ca) issueCA(name, alg string) *ca {
	k := newKey(alg)
	return &ca{Cert: sign(template(name, true), p, k.Public()), Key: k}
}

// issueLeaf makes an end-entity certificate for name signed by p.
func (p *ca) issueLeaf(name, alg string) *ca {
	k := newKey(alg)
	return &ca{Cert: sign(template(name, false), p, k.Public()), Key: k}
}

// crossSign makes a certificate with c's subject, key and key identifier,
// issued by p: what a new root gets from an old one.
func (p *ca) crossSign(c *ca) *ca {
	tmpl := template(c.Cert.Subject.CommonName, true)
	tmpl.Subject = c.Cert.Subject
	tmpl.SubjectKeyId = c.Cert.SubjectKeyId
	return &ca{Cert: sign(tmpl, p, c.Key.Public()), Key: c.Key}
}

// imposter makes a CA with c's subject (and, if sameKID, c's subject key
// identifier) but a new key, signed by p.
func (p *ca) imposter(c *ca, sameKID bool) *ca {
	k := newKey("p256")
	tmpl := template(c.Cert.Subject.CommonName, true)
	tmpl.Subject = c.Cert.Subject
	if sameKID {
		tmpl.SubjectKeyId = c.Cert.SubjectKeyId
	}
	return &ca{Cert: sign(tmpl, p, k.Public()), Key: k}
}

// selfImposter makes a self-signed CA with c's subject and key identifier but another key.
func selfImposter(c *ca) *ca {
	k := newKey("p256")
	tmpl := template(c.Cert.Subject.CommonName, true)
	tmpl.Subject = c.Cert.Subject
	tmpl.SubjectKeyId = c.Cert.SubjectKeyId
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k))
	return &ca{Cert: must(x509.ParseCertificate(der)), Key: k}
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

var curveOIDs = map[elliptic.Curve]asn1.ObjectIdentifier{
	elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
	elliptic.P384(): {1, 3, 132, 0, 34},
}

// pemKey encodes k as enc: "pkcs8" ("PRIVATE KEY"), "pkcs1" ("RSA PRIVATE
// KEY"), "sec1" ("EC PRIVATE KEY") or "sec1params" ("EC PARAMETERS" then
// "EC PRIVATE KEY", as "openssl ecparam -genkey" writes).
func pemKey(k crypto.Signer, enc string) []byte {
	var b bytes.Buffer
	switch enc {
	case "pkcs8":
		_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(k))})
	case "pkcs1":
		_ = pem.Encode(&b, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))})
	case "sec1params":
		oid := must(asn1.Marshal(curveOIDs[k.(*ecdsa.PrivateKey).Curve]))
		_ = pem.Encode(&b, &pem.Block{Type: "EC PARAMETERS", Bytes: oid})
		fallthrough
	case "sec1":
		_ = pem.Encode(&b, &pem.Block{Type: "EC PRIVATE KEY", Bytes: must(x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey)))})
	default:
		panic("unknown key encoding " + enc)
	}
	return b.Bytes()
}

// keyBlockType is the PEM type pemKey writes for the key itself.
var keyBlockType = map[string]string{
	"pkcs8": "PRIVATE KEY", "pkcs1": "RSA PRIVATE KEY", "sec1": "EC PRIVATE KEY", "sec1params": "EC PRIVATE KEY",
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// writeFile writes data to dir/name (creating directories) and returns the path.
func writeFile(dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		panic(err)
	}
	return p
}

// hierarchy is a test PKI shaped like Let's Encrypt's: an old root, a new
// root cross-signed by it, an intermediate under the new root and a leaf.
type hierarchy struct {
	oldRoot, newRoot, cross, inter, leaf *ca
}

func newHierarchy(leafAlg string) *hierarchy {
	h := &hierarchy{}
	h.oldRoot = newRoot("Test Old Root X1", "rsa")
	h.newRoot = newRoot("Test Root YE", "p384")
	h.cross = h.oldRoot.crossSign(h.newRoot)
	h.inter = h.newRoot.issueCA("Test YE1", "p384")
	h.leaf = h.inter.issueLeaf("mail.example.test", leafAlg)
	return h
}

// certbotLineage lays out dir/archive/<name>/{cert,chain,fullchain,privkey}<n>.pem
// for each version and dir/live/<name>/*.pem symlinks to the last version,
// as certbot does, and returns the live directory.
func certbotLineage(dir, name string, versions ...[3][]byte) string {
	live := filepath.Join(dir, "live", name)
	if err := os.MkdirAll(live, 0o755); err != nil {
		panic(err)
	}
	for i, v := range versions { // v: key PEM, leaf PEM, chain PEM
		n := i + 1
		files := map[string][]byte{"privkey": v[0], "cert": v[1], "chain": v[2], "fullchain": join(v[1], v[2])}
		for base, data := range files {
			writeFile(dir, filepath.Join("archive", name, base+itoa(n)+".pem"), data)
		}
	}
	for _, base := range []string{"privkey", "cert", "chain", "fullchain"} {
		relink(live, base, len(versions))
	}
	return live
}

// relink points live/<base>.pem at ../../archive/<name>/<base><n>.pem.
func relink(live, base string, n int) {
	link := filepath.Join(live, base+".pem")
	_ = os.Remove(link)
	target := filepath.Join("..", "..", "archive", filepath.Base(live), base+itoa(n)+".pem")
	if err := os.Symlink(target, link); err != nil {
		panic(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// sameCerts reports whether got and want hold the same certificates in the same order.
func sameCerts(got, want []*x509.Certificate) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !bytes.Equal(got[i].Raw, want[i].Raw) {
			return false
		}
	}
	return true
}

func names(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.Subject.CommonName
	}
	return out
}

func samePub(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// listDir returns the names in dir, failing t on error.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
