package deploy

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Regression tests of issue 9 ("the invariant from what is observed")
// against real BIND (primary + secondary) and a real Postfix: decisions
// come from what Postfix is configured to read and presents per key
// algorithm, not from danehook's bookkeeping.

// observedLab starts BIND and Postfix (with the given options) and returns
// an engine with one lineage per Postfix chain file, named after the
// file's base name ("ecdsa", "rsa"), all at _25._tcp.mail.example.test.
func observedLab(t *testing.T, opts postfixlab.Options) (*Engine, *bindlab.Lab, *postfixlab.Lab) {
	t.Helper()
	return observedLabExtra(t, opts, "")
}

// observedLabExtra is observedLab with extra configuration text appended
// (more lineages).
func observedLabExtra(t *testing.T, opts postfixlab.Options, extra string) (*Engine, *bindlab.Lab, *postfixlab.Lab) {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	pf := postfixlab.Start(t, opts)
	dir := t.TempDir()
	text := `state_dir = "` + filepath.Join(dir, "state") + `"
[postfix]
config_dir = "` + pf.ConfigDir + `"
[schedule]
publish_wait = "3s"
via = "none"
[provider.lab]
type = "rfc2136"
server = "` + lab.Primary + `"
key_file = "` + lab.KeyFile + `"
nameserver_port = ` + itoa(lab.Port) + `
timeout = 2
`
	files := pf.ChainFiles
	if len(files) == 0 {
		files = pf.OtherChainFiles
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pem")
		text += `[lineage.` + name + `]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
allow_untrusted = true
chain_file = "` + f + `"
endpoints = ["` + pf.Addr + `"]
`
	}
	text += extra
	path := filepath.Join(dir, "danehook.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rp := labPublisher(t, cfg)
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second}, lab, pf
}

// presentedLeaf is the leaf pf presents for alg.
func presentedLeaf(t *testing.T, pf *postfixlab.Lab, alg postfix.Algorithm) *x509.Certificate {
	t.Helper()
	certs, err := postfix.Present(t.Context(), pf.Addr, postfixlab.Hostname, alg)
	if err != nil {
		t.Fatalf("STARTTLS %s to %s: %v", alg, pf.Addr, err)
	}
	return certs[0]
}

// TestVerifiesEachAlgorithm: with an RSA and an ECDSA chain on one Postfix,
// each lineage is verified by a handshake only its algorithm can answer;
// a broken ECDSA chain (the one OpenSSL senders get) is caught even though
// the RSA chain is fine (issue 9 item 7).
func TestVerifiesEachAlgorithm(t *testing.T) {
	e, _, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem", "rsa.pem"}})
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitAged(t, e)
	r, err := e.Reload(t.Context())
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for _, name := range []string{"ecdsa", "rsa"} {
		lv := strings.Join(r.Verified, "\n")
		if c, _, _ := readChainFile(e.Config.Lineages[name].ChainFile); !strings.Contains(lv, tlsa.SPKIDigestHex(c.Leaf)) {
			t.Errorf("lineage %s not verified by its own key: %v", name, r.Verified)
		}
	}
	// The ECDSA chain file is replaced by hand with an unannounced key and
	// Postfix reloaded: RSA handshakes still verify, ECDSA ones must fail.
	k, c := postfixlab.SelfSigned(t, postfixlab.Hostname, false)
	postfixlab.WriteChain(t, e.Config.Lineages["ecdsa"].ChainFile, k, c)
	if err := pf.Instance.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = e.Reload(t.Context())
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), `lineage "ecdsa"`) {
		t.Fatalf("Reload with an unannounced ECDSA key: %v, want ErrVerify naming lineage ecdsa", err)
	}
	if strings.Contains(err.Error(), `lineage "rsa"`) {
		t.Errorf("the RSA lineage was blamed too: %v", err)
	}
}

// TestPostfixReadingOtherFilesIsRefused: Postfix serves certbot's live/
// files through the legacy parameters, not danehook's chain file: a
// renewal is not installed, and the error prints the postconf line that
// fixes it (issue 9 item 5).
func TestPostfixReadingOtherFilesIsRefused(t *testing.T) {
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "privkey.pem"), filepath.Join(dir, "fullchain.pem")
	k, c := postfixlab.SelfSigned(t, postfixlab.Hostname, false)
	writeFile(t, key, k)
	writeFile(t, crt, c)
	e, _, _ := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"},
		Main: []string{"smtpd_tls_chain_files =", "smtpd_tls_eccert_file = " + crt, "smtpd_tls_eckey_file = " + key}})
	l := e.Config.Lineages["ecdsa"]
	before, _ := os.ReadFile(l.ChainFile)
	ca := newCA(t)
	nk, nc, _ := ca.issue(t, nil)
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, nk)
	writeFile(t, rc, nc)
	// Make the renewal safe so that only the Postfix check can refuse it.
	if _, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: rk, CertFile: rc}); err == nil {
		waitAged(t, e)
	}
	_, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: rk, CertFile: rc})
	if !errors.Is(err, ErrPostfixNotReading) || !strings.Contains(err.Error(), crt) {
		t.Fatalf("Deploy while Postfix reads %s: %v, want ErrPostfixNotReading naming it", crt, err)
	}
	var nse *postfix.NotServedError
	if !errors.As(err, &nse) || !strings.Contains(nse.Hint(), "postconf") || !strings.Contains(nse.Hint(), l.ChainFile) {
		t.Errorf("hint %q: want the postconf line naming %s", nse.Hint(), l.ChainFile)
	}
	if after, _ := os.ReadFile(l.ChainFile); string(after) != string(before) {
		t.Error("the chain file was replaced although Postfix does not read it")
	}
}

// TestMissingChainFileIsNotAFirstChain: the chain file disappears while
// Postfix still serves its chain; a renewal with a new key is not
// installed as a "first chain", and no record is removed while Postfix
// presents the old chain (issue 9 item 4).
func TestMissingChainFileIsNotAFirstChain(t *testing.T) {
	e, _, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	l := e.Config.Lineages["ecdsa"]
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitAged(t, e)
	if _, err := e.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := presentedLeaf(t, pf, postfix.ECDSA)
	if err := os.Remove(l.ChainFile); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	nk, nc, _ := ca.issue(t, nil)
	dir := t.TempDir()
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, nk)
	writeFile(t, rc, nc)
	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: rk, CertFile: rc})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if res.Installed {
		t.Fatalf("a renewal with a new key was installed at once over a missing chain file: %+v", res)
	}
	if _, err := e.Reload(t.Context()); err != nil {
		t.Logf("Reload with the chain file missing: %v", err)
	}
	if !has(servedRecords(t, e), tlsa.SPKIDigestHex(old)) {
		t.Errorf("the record of the chain Postfix presents (%s) was removed: %v", short(tlsa.SPKIDigestHex(old)), servedRecords(t, e))
	}
}
