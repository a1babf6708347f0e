package deploy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/state"
	"github.com/miekg/dns"
)

// Issue 9, "Guardrails a mail operator expects", against a real BIND
// primary and secondary: an untrusted issuer and an unsigned zone with
// require_dnssec stop dane-deploy and the timer before anything is
// published or installed.

// guardLab starts a BIND lab with opts and returns the engine of
// fixture.LabConfig's lineage "mail" whose configuration text went
// through edit first (nil: unchanged), and its provider.
func guardLab(t *testing.T, opts bindlab.Options, edit func(string) string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136) {
	t.Helper()
	lab := bindlab.Start(t, opts)
	path, text := fixture.LabConfig(t, lab, "")
	if edit != nil {
		text = edit(text)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(path, []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	rp := labPublisher(t, cfg)
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second}
	return e, lab, rp
}

// trustLine rewrites LabConfig's "allow_untrusted = true" line of lineage
// mail into lines (nothing: the default, untrusted chains refused).
func trustLine(lines string) func(string) string {
	return func(text string) string {
		if !strings.Contains(text, "allow_untrusted = true\n") {
			panic("fixture.LabConfig no longer sets allow_untrusted")
		}
		return strings.Replace(text, "allow_untrusted = true\n", lines, 1)
	}
}

// certAuthority is a CA of the trust tests: a self-signed root or an
// intermediate.
type certAuthority struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var guardSerial = big.NewInt(1000)

// newAuthority makes a CA certificate named cn, signed by parent (nil:
// self-signed, a root).
func newAuthority(t *testing.T, cn string, parent *certAuthority) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	guardSerial.Add(guardSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(guardSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a leaf for fixture.Host from ca and returns the key PEM and
// the leaf PEM followed by extra (the issuers the ACME client hands over).
func (ca *certAuthority) leaf(t *testing.T, extra ...[]byte) (keyPEM, certsPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	guardSerial.Add(guardSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(guardSerial), Subject: pkix.Name{CommonName: fixture.Host}, DNSNames: []string{fixture.Host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certsPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, x := range extra {
		certsPEM = append(certsPEM, x...)
	}
	return fixture.KeyPEM(t, key), certsPEM
}

// trustShape is one chain an ACME client hands over, and the roots a
// ca_file could name.
type trustShape struct {
	name string
	// key and certs are the renewal's files; issuer is the leaf's issuer
	// as the refusal must name it.
	key, certs []byte
	issuer     string
	// caFile is a ca_file naming a root that does not make this chain
	// trusted ("" for none); goodCA the one that does ("" when none can:
	// a self-signed leaf).
	caFile, goodCA []byte
}

// trustShapes returns the untrusted chains of the guardrail: a leaf of a
// test CA (leaf + CA, as Pebble hands over); a self-signed leaf; a leaf
// whose intermediate was signed by another root than ca_file's; a leaf
// whose issuer has the ca_file root's name but another key.
func trustShapes(t *testing.T) []trustShape {
	t.Helper()
	var out []trustShape

	testCA := newAuthority(t, "danehook staging root", nil)
	k, c := testCA.leaf(t, testCA.pem)
	out = append(out, trustShape{name: "test CA leaf", key: k, certs: c, issuer: "CN=danehook staging root",
		caFile: newAuthority(t, "unrelated root", nil).pem, goodCA: testCA.pem})

	k, c = postfixlab.SelfSigned(t, fixture.Host, false)
	out = append(out, trustShape{name: "self-signed leaf", key: k, certs: c, issuer: "CN=" + fixture.Host})

	root := newAuthority(t, "danehook root X1", nil)
	other := newAuthority(t, "danehook root X2", nil)
	inter := newAuthority(t, "danehook intermediate R1", other)
	k, c = inter.leaf(t, inter.pem)
	out = append(out, trustShape{name: "intermediate of another root", key: k, certs: c, issuer: "CN=danehook intermediate R1",
		caFile: root.pem, goodCA: other.pem})

	real := newAuthority(t, "danehook root Y1", nil)
	fake := newAuthority(t, "danehook root Y1", nil) // same name, another key
	k, c = fake.leaf(t, fake.pem)
	out = append(out, trustShape{name: "look-alike of the ca_file root", key: k, certs: c, issuer: "CN=danehook root Y1",
		caFile: real.pem, goodCA: fake.pem})
	return out
}

// renewalFiles writes a renewal's key and certificates and returns the
// lego v5 deploy hook environment for lineage mail.
func renewalFiles(t *testing.T, key, certs []byte) *hookenv.Deploy {
	t.Helper()
	dir := t.TempDir()
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, key)
	writeFile(t, rc, certs)
	return &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: rk, CertFile: rc}
}

// assertNothingDone checks that no UPDATE was sent since before, that
// both servers serve what they served then, and that neither the chain
// file nor a pending switch was written.
func assertNothingDone(t *testing.T, what string, e *Engine, lab *bindlab.Lab, rp *dnsupdate.RFC2136, before dnsupdate.Stats, served []string, serverBefore uint64) {
	t.Helper()
	if got := rp.Sent().Updates - before.Updates; got != 0 {
		t.Errorf("%s: %d UPDATE message(s) sent, want none", what, got)
	}
	if got := lab.Counters(t, "primary").Requests["UPDATE"] - serverBefore; got != 0 {
		t.Errorf("%s: the primary counted %d UPDATE(s), want none", what, got)
	}
	for _, srv := range []string{lab.Primary, lab.Secondary} {
		if got := serverTLSA(t, srv, owner); !slices.Equal(sortedCopy(got), sortedCopy(served)) {
			t.Errorf("%s: %s serves %v at %s, want %v unchanged", what, srv, got, owner, served)
		}
	}
	if _, err := os.Stat(e.Config.Lineages["mail"].ChainFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: the chain file was installed (%v)", what, err)
	}
	if _, err := os.Stat(e.pendingPath("mail")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: a pending switch was recorded (%v)", what, err)
	}
}

// serverTLSA asks addr directly (TCP, no recursion) for owner's TLSA
// records, in presentation form ("3 1 1 <hex>").
func serverTLSA(t *testing.T, addr, owner string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(owner, dns.TypeTLSA)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s at %s: %v", owner, addr, err)
	}
	out := []string{}
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.TLSA); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", x.Usage, x.Selector, x.MatchingType, strings.ToLower(x.Certificate)))
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// wantUntrusted checks that err is the guardrail's refusal naming the
// lineage, the issuer and the setting.
func wantUntrusted(t *testing.T, what string, err error, issuer string) {
	t.Helper()
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("%s: %v, want ErrUntrusted", what, err)
	}
	for _, s := range []string{`lineage "mail"`, issuer, "allow_untrusted = true", "ca_file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error does not name %q: %v", what, s, err)
		}
	}
}

// TestUntrustedIssuerRefused: a lineage without allow_untrusted whose
// renewal's issuer is in neither the system trust store nor ca_file (four
// shapes) is refused by dane-deploy, by the timer (Reload from the
// lineage's lego files), by danectl plan and publish (status warns): no
// UPDATE, the RRset on both servers unchanged,
// no chain file, no pending switch. With ca_file naming the root that
// issued it the same files are published and, once aged, installed; with
// allow_untrusted = true too.
func TestUntrustedIssuerRefused(t *testing.T) {
	for _, sh := range trustShapes(t) {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			lines := ""
			if sh.caFile != nil {
				writeFile(t, filepath.Join(dir, "ca.pem"), sh.caFile)
				lines = `ca_file = "` + filepath.Join(dir, "ca.pem") + "\"\n"
			}
			// The timer's source: lego's files of the lineage.
			crt, key := filepath.Join(dir, "lego", "mail.crt"), filepath.Join(dir, "lego", "mail.key")
			lines += `lego_cert = "` + crt + "\"\nlego_key = \"" + key + "\"\n"
			e, lab, rp := guardLab(t, bindlab.Options{TTL: 1}, trustLine(lines))
			d := renewalFiles(t, sh.key, sh.certs)
			served := serverTLSA(t, lab.Primary, owner)

			before, sb := rp.Sent(), lab.Counters(t, "primary").Requests["UPDATE"]
			res, err := e.Deploy(t.Context(), d)
			wantUntrusted(t, "Deploy", err, sh.issuer)
			if res != nil && len(res.Plans) > 0 {
				t.Errorf("Deploy planned %s", planText(res.Plans))
			}
			assertNothingDone(t, "Deploy", e, lab, rp, before, served, sb)

			writeFile(t, key, sh.key)
			writeFile(t, crt, sh.certs)
			before, sb = rp.Sent(), lab.Counters(t, "primary").Requests["UPDATE"]
			r, err := e.Reload(t.Context())
			wantUntrusted(t, "Reload (tick) with the renewal in lego's files", err, sh.issuer)
			if r != nil && (len(r.Published) > 0 || len(r.Switched) > 0) {
				t.Errorf("Reload published %v, switched %v", r.Published, r.Switched)
			}
			assertNothingDone(t, "Reload", e, lab, rp, before, served, sb)

			st, err := e.Status(t.Context())
			if err != nil || len(st.Lineages) != 1 || !strings.Contains(strings.Join(st.Lineages[0].Warnings, "\n"), "not published or installed") {
				t.Errorf("Status: %v; want a warning that the untrusted chain is not published or installed, got %+v", err, st)
			}
			if st != nil && len(st.Owners) == 1 && len(st.Owners[0].Records.Records) > 0 {
				t.Errorf("Status wants %+v at the owner for an untrusted chain", st.Owners[0].Records.Records)
			}
			plans, err := e.Plan(t.Context())
			wantUntrusted(t, "Plan (danectl plan) of lego's files", err, sh.issuer)
			if len(plans) > 0 && len(plans[0].Changes) > 0 {
				t.Errorf("Plan planned %s", planText(plans))
			}
			before, sb = rp.Sent(), lab.Counters(t, "primary").Requests["UPDATE"]
			plans, err = e.Publish(t.Context())
			wantUntrusted(t, "Publish (danectl publish) of lego's files", err, sh.issuer)
			if len(plans) > 0 && len(plans[0].Changes) > 0 {
				t.Errorf("Publish planned %s", planText(plans))
			}
			assertNothingDone(t, "Publish", e, lab, rp, before, served, sb)
		})
	}
}

// TestTrustedIssuerProceeds is the control of TestUntrustedIssuerRefused:
// the same shapes pass once ca_file names the root that issued them, and
// with allow_untrusted = true (the self-signed leaf, which no root
// issued): the renewal is published, then installed once aged.
func TestTrustedIssuerProceeds(t *testing.T) {
	for _, sh := range trustShapes(t) {
		for _, how := range []string{"ca_file", "allow_untrusted"} {
			if how == "ca_file" && sh.goodCA == nil {
				continue
			}
			if how == "allow_untrusted" && sh.name != "self-signed leaf" && sh.name != "test CA leaf" {
				continue
			}
			t.Run(sh.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				lines := "allow_untrusted = true\n"
				if how == "ca_file" {
					p := filepath.Join(t.TempDir(), "ca.pem")
					writeFile(t, p, sh.caFile, sh.goodCA) // the wrong root beside the right one
					lines = `ca_file = "` + p + "\"\n"
				}
				e, _, _ := guardLab(t, bindlab.Options{TTL: 1}, trustLine(lines))
				if err := os.MkdirAll(filepath.Dir(e.Config.Lineages["mail"].ChainFile), 0o700); err != nil {
					t.Fatal(err)
				}
				d := renewalFiles(t, sh.key, sh.certs)
				res, err := e.Deploy(t.Context(), d)
				if err != nil || res.Installed || res.Pending == nil {
					t.Fatalf("first Deploy: %+v, %v; want published and pending (not aged yet)", res, err)
				}
				if !has(servedRecords(t, e), fixture.SPKI(t, sh.certs)) {
					t.Fatalf("the renewal's 3 1 1 is not published: %v", servedRecords(t, e))
				}
				waitAged(t, e)
				res, err = e.Deploy(t.Context(), d)
				if err != nil || !res.Installed {
					t.Fatalf("Deploy once aged: %+v, %v; want installed", res, err)
				}
				if got, _, _ := readChainFile(e.Config.Lineages["mail"].ChainFile); got == nil || spkiHex(got) != fixture.SPKI(t, sh.certs) {
					t.Errorf("the chain file does not hold the renewal")
				}
			})
		}
	}
}

// TestRequireDNSSECBlocksDeploy: with require_dnssec = true and an
// unsigned zone, dane-deploy and the timer (Reload from the lineage's lego
// files) stop before publishing: ErrUnsigned naming the zone and the
// setting, no UPDATE, both servers unchanged, nothing installed. With the
// zone signed (bindlab Options.Signed) the same renewal is published and,
// once aged, installed.
func TestRequireDNSSECBlocksDeploy(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "unsigned", true: "signed"}[signed], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			crt, key := filepath.Join(dir, "lego", "mail.crt"), filepath.Join(dir, "lego", "mail.key")
			lines := "allow_untrusted = true\nrequire_dnssec = true\n" +
				`lego_cert = "` + crt + "\"\nlego_key = \"" + key + "\"\n"
			e, lab, rp := guardLab(t, bindlab.Options{TTL: 1, Signed: signed}, trustLine(lines))
			if err := os.MkdirAll(filepath.Dir(e.Config.Lineages["mail"].ChainFile), 0o700); err != nil {
				t.Fatal(err)
			}
			k, c, _ := newCA(t).issue(t, nil)
			d := renewalFiles(t, k, c)
			writeFile(t, key, k) // lego's files: the same renewal
			writeFile(t, crt, c)
			served := serverTLSA(t, lab.Primary, owner)
			before, sb := rp.Sent(), lab.Counters(t, "primary").Requests["UPDATE"]
			res, err := e.Deploy(t.Context(), d)
			if signed {
				if err != nil || res.Pending == nil || !has(servedRecords(t, e), fixture.SPKI(t, c)) {
					t.Fatalf("Deploy into a signed zone: %+v, %v; want published and pending", res, err)
				}
				waitAged(t, e)
				if res, err = e.Deploy(t.Context(), d); err != nil || !res.Installed {
					t.Fatalf("Deploy into a signed zone once aged: %+v, %v; want installed", res, err)
				}
				return
			}
			wantUnsigned := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrUnsigned) {
					t.Fatalf("%s into an unsigned zone with require_dnssec: %v, want ErrUnsigned", what, err)
				}
				for _, s := range []string{`zone "example.test."`, "require_dnssec = true", "mail"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error does not name %q: %v", what, s, err)
					}
				}
			}
			wantUnsigned("Deploy", err)
			assertNothingDone(t, "Deploy", e, lab, rp, before, served, sb)

			before, sb = rp.Sent(), lab.Counters(t, "primary").Requests["UPDATE"]
			_, err = e.Reload(t.Context())
			wantUnsigned("Reload (tick) with the renewal in lego's files", err)
			assertNothingDone(t, "Reload", e, lab, rp, before, served, sb)
		})
	}
}

// TestUntrustedPendingNotInstalled: a pending switch recorded while the
// lineage said allow_untrusted = true is not installed by a later run once
// the setting is gone, although its record is aged: Reload (the timer)
// refuses with ErrUntrusted, and the chain file stays absent. With the
// setting back the same run installs it.
func TestUntrustedPendingNotInstalled(t *testing.T) {
	t.Parallel()
	e, _, _ := guardLab(t, bindlab.Options{TTL: 1}, nil)
	l := e.Config.Lineages["mail"]
	if err := os.MkdirAll(filepath.Dir(l.ChainFile), 0o700); err != nil {
		t.Fatal(err)
	}
	k, c := postfixlab.SelfSigned(t, fixture.Host, false)
	res, err := e.Deploy(t.Context(), renewalFiles(t, k, c))
	if err != nil || res.Pending == nil {
		t.Fatalf("Deploy with allow_untrusted: %+v, %v; want a pending switch", res, err)
	}
	waitAged(t, e)
	l.AllowUntrusted = false
	r, err := e.Reload(t.Context())
	wantUntrusted(t, "Reload of an aged pending switch without allow_untrusted", err, "CN="+fixture.Host)
	if len(r.Switched) > 0 {
		t.Errorf("Reload switched %v", r.Switched)
	}
	if _, err := os.Stat(l.ChainFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the untrusted pending chain was installed (%v)", err)
	}
	l.AllowUntrusted = true
	// Reload then installs it; Postfix (fixture.LabConfig's postconf-only
	// directory) cannot be reloaded, which is not what this test is about.
	r, _ = e.Reload(t.Context())
	if len(r.Switched) != 1 {
		t.Errorf("Reload with allow_untrusted back: switched %v, want the pending chain", r.Switched)
	}
}
