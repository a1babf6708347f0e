package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/tlsa"
)

// intermediate returns a CA certificate named cn signed by root, with its key.
func intermediate(t *testing.T, root *testCA, cn string, serial int64) *fixture.CA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte(cn),
		AuthorityKeyId: root.cert.SubjectKeyId}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, k.Public(), root.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &fixture.CA{Cert: c, Key: k}
}

// TestIssuerSetRenewalsAgainstBIND: ta = "issuer-set" with only 2 1 1
// publishes every member ahead; a renewal onto another member — with a new
// key — is installed by the deploy hook with no DNS change; a renewal onto
// a non-member publishes its issuer's record and waits for it to age.
func TestIssuerSetRenewalsAgainstBIND(t *testing.T) {
	root := newCA(t)
	i1, i2, i3 := intermediate(t, root, "E5", 11), intermediate(t, root, "E6", 12), intermediate(t, root, "E7", 13)
	setDir := t.TempDir()
	writeFile(t, filepath.Join(setDir, "e5.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i1.Cert.Raw}))
	writeFile(t, filepath.Join(setDir, "e6.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i2.Cert.Raw}))
	e, _, rp := bindEngine(t, `usages = ["2 1 1"]
ta = "issuer-set"
issuer_set = "`+setDir+`"`)
	rec := func(ca *fixture.CA) string {
		r, _ := tlsa.FromCertificate(ca.Cert, tlsa.UsageDANETA, tlsa.SelectorSPKI, tlsa.MatchSHA256)
		return r.String()
	}
	k, c, _ := i1.Issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := servedRecords(t, e)
	if len(got) != 2 || !has(got, rec(i1)) || !has(got, rec(i2)) {
		t.Fatalf("published %v, want the 2 1 1 of both members", got)
	}
	waitAged(t, e)
	updates := rp.Sent().Updates

	renew := func(ca *fixture.CA) *DeployResult {
		t.Helper()
		dir := t.TempDir()
		key, crt := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
		nk, nc, _ := ca.Issue(t, nil) // a new key every time
		writeFile(t, key, nk)
		writeFile(t, crt, nc)
		res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: key, CertFile: crt})
		if err != nil {
			t.Fatalf("Deploy onto %s: %v", ca.Cert.Subject.CommonName, err)
		}
		return res
	}
	if res := renew(i2); !res.Installed {
		t.Fatalf("renewal onto member E6: not installed (%s)", res.Reason)
	}
	if n := rp.Sent().Updates; n != updates {
		t.Errorf("renewal onto a member sent %d UPDATEs, want none", n-updates)
	}
	res := renew(i3)
	if res.Installed || res.Pending == nil {
		t.Fatalf("renewal onto non-member E7: installed %v, pending %v; want a pending switch", res.Installed, res.Pending)
	}
	if got := servedRecords(t, e); !has(got, rec(i3)) {
		t.Fatalf("served %v, want E7's 2 1 1 published", got)
	}
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if w := st.Lineages[0].Warnings; !has(w, `issued by "CN=E7"`) {
		t.Errorf("status warnings = %q, want the non-member issuer named", w)
	}
	waitAged(t, e)
	if res := renew(i3); !res.Installed {
		t.Errorf("renewal onto E7 once its record aged: not installed (%s)", res.Reason)
	}
}
