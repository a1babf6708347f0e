package deploy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
)

// testCA is a CA that issues leaves for mail.example.test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "danehook test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		SubjectKeyId: []byte{1, 2, 3, 4},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

var serial int64 = 100

// issue returns a PEM key and a PEM leaf+CA chain for a fresh or given key.
func (ca *testCA) issue(t testing.TB, key *ecdsa.PrivateKey) (keyPEM, certsPEM []byte, k *ecdsa.PrivateKey) {
	t.Helper()
	if key == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "mail.example.test"},
		DNSNames:  []string{"mail.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: ca.cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	certsPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return keyPEM, certsPEM, key
}

func writeFile(t testing.TB, path string, parts ...[]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

// bindEngine starts a BIND lab and returns an engine configured for one
// lineage "mail" at mail.example.test, publishing through an RFC2136
// provider whose message counters the test can read.
func bindEngine(t *testing.T, extra string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136) {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	dir := t.TempDir()
	// A Postfix configuration directory that reads the lineage's chain
	// file (postconf only; no Postfix runs in these tests).
	pfDir := filepath.Join(dir, "postfix-etc")
	chainFile := filepath.Join(dir, "postfix", "mail-ecdsa.pem")
	writeFile(t, filepath.Join(pfDir, "main.cf"), []byte("smtpd_tls_security_level = may\nsmtpd_tls_chain_files = "+chainFile+"\n"))
	cfgText := `
state_dir = "` + filepath.Join(dir, "state") + `"
[postfix]
config_dir = "` + pfDir + `"
[provider.lab]
type = "rfc2136"
server = "` + lab.Primary + `"
key_file = "` + lab.KeyFile + `"
nameserver_port = ` + itoa(lab.Port) + `
timeout = 2

[lineage.mail]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
allow_untrusted = true
chain_file = "` + chainFile + `"
` + extra
	// Written out too, for the child processes of the crash tests.
	cfgPath := filepath.Join(dir, "danehook.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgPath, []byte(cfgText))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	pub, err := NewPublisher(cfg.Providers["lab"])
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	rp := pub.(*dnsupdate.RFC2136)
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second}
	return e, lab, rp
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func planText(plans []*OwnerPlan) string {
	var b strings.Builder
	for _, p := range plans {
		b.WriteString(p.Changes.String())
	}
	return b.String()
}

func mustLeaf(t testing.TB, certsPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certsPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fileDigest returns the hex SHA-256 of the file at path ("" when missing).
func fileDigest(path string) (string, error) {
	_, d, err := readChainFile(path)
	return d, err
}
