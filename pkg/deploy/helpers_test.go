package deploy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
)

// testCA is the shared test CA (internal/fixture) under this package's
// names.
type testCA struct {
	*fixture.CA
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	ca := fixture.NewCA(t)
	return &testCA{CA: ca, cert: ca.Cert, key: ca.Key}
}

// issue returns a PEM key and a PEM leaf+CA chain for a fresh or given key.
func (ca *testCA) issue(t testing.TB, key *ecdsa.PrivateKey) (keyPEM, certsPEM []byte, k *ecdsa.PrivateKey) {
	t.Helper()
	var signer crypto.Signer
	if key != nil {
		signer = key
	}
	keyPEM, certsPEM, signer = ca.Issue(t, signer)
	return keyPEM, certsPEM, signer.(*ecdsa.PrivateKey)
}

func writeFile(t testing.TB, path string, parts ...[]byte) {
	t.Helper()
	fixture.WriteFile(t, path, parts...)
}

// bindEngine starts a BIND lab and returns an engine configured for one
// lineage "mail" at mail.example.test (fixture.LabConfig), publishing
// through an RFC2136 provider whose message counters the test can read.
func bindEngine(t *testing.T, extra string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136) {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	// Written out too, for the child processes of the crash tests.
	cfgPath, cfgText := fixture.LabConfig(t, lab, extra)
	cfg, err := config.Parse(cfgPath, []byte(cfgText))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rp := labPublisher(t, cfg)
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second}
	return e, lab, rp
}

// labPublisher builds the lab's provider directly (the binaries build it
// through cmd/internal/cliapp, the only code that reads credentials).
func labPublisher(t testing.TB, cfg *config.Config) *dnsupdate.RFC2136 {
	t.Helper()
	p := cfg.Providers["lab"]
	key, err := dnsupdate.LoadTSIGKeyFile(p.KeyFile)
	if err != nil {
		t.Fatalf("lab TSIG key: %v", err)
	}
	return &dnsupdate.RFC2136{Server: p.Server, Zone: p.Zone, Key: key, Timeout: time.Duration(p.Timeout) * time.Second}
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

const owner = fixture.Owner

// servedRecords returns the records the primary serves at owner.
func servedRecords(t *testing.T, e *Engine) []string {
	t.Helper()
	pub, _ := e.publisher("lab")
	rrs, err := pub.Records(t.Context(), owner)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Record.String())
	}
	return out
}

func has(list []string, sub string) bool {
	for _, x := range list {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// legoLab writes lego's files for a fresh key, serves and publishes that
// chain, and returns the engine (configured with lego_cert and lego_key),
// the CA and the two files.
func legoLab(t *testing.T) (e *Engine, ca *testCA, crt, key string) {
	t.Helper()
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "mail.example.test.crt"), filepath.Join(dir, "mail.example.test.key")
	e, _, _ = bindEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"`)
	ca = newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, key, k)
	writeFile(t, crt, c)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, ca, crt, key
}

// mustIssue issues a leaf for an existing ECDSA key.
func mustIssue(t *testing.T, ca *testCA, k any) []byte {
	t.Helper()
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key %T, want ECDSA", k)
	}
	_, c, _ := ca.issue(t, ek)
	return c
}
