package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/state"
)

// TestPruneCommand runs `danectl status` and `danectl prune` against a
// real BIND primary and secondary and a real Postfix, with two records at
// the owner that danehook did not publish and that match no chain (a
// panel's 3 0 1 of another certificate, the 3 1 1 of a stale key): status
// lists each as matching no chain; prune keeps them (exit 0, a "kept"
// line with the reason) while the served chain's record is not aged,
// fails with exit 4 when the server refuses the removal (nothing lost)
// and exit 9 when another run holds the lock, removes exactly them once
// aged ("- … (matched no chain)", exit 0), and then has nothing to prune.
func TestPruneCommand(t *testing.T) {
	lab := bindlab.Start(t, bindlab.Options{TTL: 1, ExtraKeys: []bindlab.ExtraKey{{Name: "narrow"}}})
	pf := postfixlab.Start(t, postfixlab.Options{})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "danehook.toml")
	if err := os.WriteFile(cfg, []byte(`state_dir = "`+filepath.Join(dir, "state")+`"
[postfix]
config_dir = "`+pf.ConfigDir+`"
[schedule]
via = "none"
[provider.lab]
type = "rfc2136"
server = "`+lab.Primary+`"
key_file = "`+lab.KeyFile+`"
nameserver_port = `+strconv.Itoa(lab.Port)+`
timeout = 2
[lineage.mail]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
allow_untrusted = true
chain_file = "`+pf.ChainFiles[0]+`"
endpoints = ["`+pf.Addr+`"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	const owner = "_25._tcp.mail.example.test."
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	_, otherCert := postfixlab.SelfSigned(t, "mail.example.test", false)
	_, staleCert := postfixlab.SelfSigned(t, "mail.example.test", false)
	foreign := []string{"3 0 1 " + sum(derOf(t, otherCert)), "3 1 1 " + sum(spkiOf(t, staleCert))}
	lab.Nsupdate(t, "update add "+owner+" 1 IN TLSA "+foreign[0]+"\nupdate add "+owner+" 1 IN TLSA "+foreign[1]+"\n")

	if code, out, errs := danectl(t, "publish", "--config", cfg); code != exitOK {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := danectl(t, "status", "--config", cfg)
	for _, f := range foreign {
		if !strings.Contains(out, "  "+f+": matches no chain Postfix may serve (not danehook's; 'danectl prune' removes it once safe)\n") {
			t.Errorf("status does not list %s as matching no chain: exit %d\n%s%s", f, code, out, errs)
		}
	}

	code, out, errs = danectl(t, "prune", "--config", cfg)
	if code != exitOK || strings.Contains(out, "(matched no chain)") || strings.Count(out, "  kept "+owner) != 2 || !strings.Contains(out, "not aged") {
		t.Fatalf("prune before the served record is aged: exit %d, want 0 and both kept with the reason\n%s%s", code, out, errs)
	}

	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	danectl(t, "status", "--config", cfg) // the servers' first sightings
	time.Sleep(2100 * time.Millisecond)   // 2 x TTL: aged

	// The narrow key may change nothing: BIND answers REFUSED.
	editConfig(t, cfg, `key_file = "`+lab.KeyFile+`"`, `key_file = "`+lab.Keys["narrow."].File+`"`, "")
	code, out, errs = danectl(t, "prune", "--config", cfg)
	wantExit(t, "prune with a key the update-policy refuses", code, cliapp.ExitRefused, out, errs, "REFUSED")
	editConfig(t, cfg, `key_file = "`+lab.Keys["narrow."].File+`"`, `key_file = "`+lab.KeyFile+`"`, "")

	lk, err := (&state.Store{Dir: filepath.Join(dir, "state")}).Acquire("danehook", 0)
	if err != nil {
		t.Fatal(err)
	}
	old := cliapp.LockWait
	cliapp.LockWait = 200 * time.Millisecond
	code, out, errs = danectl(t, "prune", "--config", cfg)
	cliapp.LockWait = old
	lk.Unlock()
	wantExit(t, "prune while another run holds the lock", code, cliapp.ExitLocked, out, errs, "danehook.lock")

	code, out, errs = danectl(t, "prune", "--config", cfg)
	if code != exitOK || strings.Contains(out, "kept") {
		t.Fatalf("prune once aged: exit %d, want 0 and nothing kept\n%s%s", code, out, errs)
	}
	for _, f := range foreign {
		if !strings.Contains(out, "- "+owner+" 1 IN TLSA "+f+" (matched no chain)\n") {
			t.Errorf("prune once aged does not report %s removed:\n%s", f, out)
		}
	}
	if n := strings.Count(out, "(matched no chain)"); n != 2 {
		t.Errorf("prune removed %d records, want 2:\n%s", n, out)
	}
	// Until the secondary has the removal it lags behind the primary, and
	// no record is aged while a server lags: wait for it.
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	code, out, errs = danectl(t, "prune", "--config", cfg)
	if code != exitOK || !strings.HasPrefix(out, "nothing to prune") {
		t.Errorf("prune rerun: exit %d, want 0 and nothing to prune\n%s%s", code, out, errs)
	}
	if code, out, errs = danectl(t, "status", "--config", cfg); strings.Contains(out, "matches no chain") {
		t.Errorf("status after prune still lists records matching no chain: exit %d\n%s%s", code, out, errs)
	}
}

// spkiOf returns the SubjectPublicKeyInfo of the first certificate in
// certPEM.
func spkiOf(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	c, err := x509.ParseCertificate(derOf(t, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c.RawSubjectPublicKeyInfo
}

// derOf returns the DER of the first certificate in certPEM.
func derOf(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes
}
