package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/miekg/dns"
)

// TestExitUnsignedRequireDNSSEC: `danectl tick` (the timer) with
// require_dnssec = true and the lab's unsigned zone stops with exit 2 and
// a message naming the zone and the setting (README "Unsigned zone with
// require_dnssec (exit 2)"), before publishing anything.
func TestExitUnsignedRequireDNSSEC(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	// The lineage is the file's last table; a Postfix directory without
	// main.cf keeps the system's Postfix out of it.
	editConfig(t, cfg, "", "", "require_dnssec = true\n\n[postfix]\nconfig_dir = \""+t.TempDir()+"\"\n")
	before := lab.Counters(t, "primary").Requests["UPDATE"]
	code, out, errs := danectl(t, "tick", "--config", cfg)
	wantExit(t, "tick into an unsigned zone with require_dnssec", code, cliapp.ExitUsage, out, errs, `zone "example.test."`, "require_dnssec = true")
	if got := lab.Counters(t, "primary").Requests["UPDATE"] - before; got != 0 {
		t.Errorf("tick sent %d UPDATE(s) into the unsigned zone", got)
	}
}

// TestExitUntrustedPublish: `danectl publish` of a lineage without
// allow_untrusted whose lego files hold a chain no trusted root issued
// (self-signed) exits 2 naming the lineage and the setting, and does not
// publish that chain's record (the served chain file's record goes out).
func TestExitUntrustedPublish(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	dir := t.TempDir()
	key, cert := postfixlab.SelfSigned(t, "mail.example.test", false)
	crt, kf := filepath.Join(dir, "mail.crt"), filepath.Join(dir, "mail.key")
	if err := os.WriteFile(crt, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	editConfig(t, cfg, "", "", "lego_cert = \""+crt+"\"\nlego_key = \""+kf+"\"\n")
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish of an untrusted chain", code, cliapp.ExitUsage, out, errs, `lineage "mail"`, "allow_untrusted = true")
	spki := sha256.Sum256(spkiOf(t, cert))
	if recs := strings.Join(tlsaAt(t, lab.Primary), "\n"); strings.Contains(recs, hex.EncodeToString(spki[:])) || len(tlsaAt(t, lab.Primary)) != 1 {
		t.Errorf("the primary serves %q: want the served chain's record only, not the untrusted chain's", recs)
	}
}

// tlsaAt asks addr (TCP, no recursion) for the TLSA records of the lab
// owner, lower-case presentation data.
func tlsaAt(t *testing.T, addr string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("_25._tcp.mail.example.test.", dns.TypeTLSA)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.TLSA); ok {
			out = append(out, strings.ToLower(x.Certificate))
		}
	}
	return out
}
