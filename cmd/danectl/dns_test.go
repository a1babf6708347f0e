package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
)

// dnsLab starts BIND and writes a configuration with one lineage whose
// served chain is a fresh self-signed certificate; keyFile picks the TSIG
// key the provider uses.
func dnsLab(t *testing.T, pick func(*bindlab.Lab) string) (cfg string, lab *bindlab.Lab) {
	t.Helper()
	lab = bindlab.Start(t, bindlab.Options{TTL: 1, ExtraKeys: []bindlab.ExtraKey{{Name: "narrow"}}})
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail.example.test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	chainFile := filepath.Join(dir, "mail.pem")
	os.WriteFile(chainFile, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...), 0o600)
	cfg = filepath.Join(dir, "danehook.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir = %q
[provider.lab]
type = "rfc2136"
server = %q
key_file = %q
nameserver_port = %d
timeout = 2
[lineage.mail]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
chain_file = %q
`, filepath.Join(dir, "state"), lab.Primary, pick(lab), lab.Port, chainFile)), 0o600)
	return cfg, lab
}

func danectl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"danectl"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanPublishStatusCommands(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	// Postfix configured to serve the lineage's chain file: the owner's
	// first records are published (not held, as while this host's own
	// Postfix offered no STARTTLS).
	pfDir := filepath.Join(t.TempDir(), "postfix")
	fixture.WritePostfixConfig(t, pfDir, filepath.Join(filepath.Dir(cfg), "mail.pem"))
	editConfig(t, cfg, "", "", fmt.Sprintf("\n[postfix]\nconfig_dir = %q\n", pfDir))
	code, out, errs := danectl(t, "plan", "--config", cfg)
	if code != exitMismatch || !strings.Contains(out, "+ _25._tcp.mail.example.test. 1 IN TLSA 3 1 1 ") {
		t.Fatalf("plan: exit %d, want 1 with one addition\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "1 UPDATE message for zone example.test. (to send)") {
		t.Errorf("plan does not say how many UPDATE messages the zone takes:\n%s", out)
	}
	if code, out, errs = danectl(t, "publish", "--config", cfg); code != exitOK || !strings.Contains(out, "1 added") || !strings.Contains(out, "1 UPDATE message for zone example.test. (sent)") {
		t.Fatalf("publish: exit %d, want 1 added in 1 UPDATE message\n%s%s", code, out, errs)
	}
	if code, out, errs = danectl(t, "--config", cfg, "plan", "mail"); code != exitOK || !strings.Contains(out, "no change") || strings.Contains(out, "UPDATE message") {
		t.Fatalf("plan after publish: exit %d, want 0 and no change\n%s%s", code, out, errs)
	}
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	code, out, errs = danectl(t, "status", "--config", cfg, "--json")
	var st documentedStatus
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status --json: %v\n%s%s", err, out, errs)
	}
	checkTimes(t, []byte(out))
	if len(st.Owners) != 1 || len(st.Owners[0].Servers) != 2 || len(st.Lineages) != 1 || st.Lineages[0].ServedNotAfter == "" {
		t.Fatalf("status: %+v", st)
	}
	for _, s := range st.Owners[0].Servers {
		if len(s.Records) != 1 {
			t.Errorf("server %s serves %v, want the published record", s.Addr, s.Records)
		}
	}
	// Just published with TTL 1: not aged yet, or aged a moment later.
	if code != exitOK && code != exitMismatch {
		t.Errorf("status exit %d", code)
	}
	time.Sleep(2100 * time.Millisecond) // 2 x TTL of the lab, so the record is aged
	code, out, errs = danectl(t, "status", "--config", cfg)
	// The record is aged; the chain file was never reloaded and verified
	// by danehook, so status still reports that (exit 1).
	if code != exitMismatch || !strings.Contains(out, ": aged") || !strings.Contains(out, "DNSSEC: WARNING") ||
		!strings.Contains(out, "RELOAD PENDING") || strings.Contains(out, "NOT AGED") {
		t.Errorf("status after 2 x TTL: exit %d\n%s%s", code, out, errs)
	}
}

func TestPublishRefusedExitCode(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.Keys["narrow."].File })
	code, out, errs := danectl(t, "publish", "--config", cfg)
	if code != 4 || !strings.Contains(errs, "REFUSED") || !strings.Contains(errs, "update-policy { grant") || strings.Count(errs, "update-policy { grant") != 1 {
		t.Fatalf("publish with a key the policy does not grant: exit %d, want 4\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "added") || !strings.Contains(out, "(not applied)") {
		t.Errorf("refused publish reported as applied:\n%s", out)
	}
}

func TestBadConfigExitCode(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("[lineage.mail]\nhostz = 1\n"), 0o600)
	code, _, errs := danectl(t, "plan", "--config", cfg)
	if code != exitUsage || !strings.Contains(errs, cfg+":2") {
		t.Fatalf("exit %d, stderr %q; want 2 naming %s:2", code, errs, cfg)
	}
}
