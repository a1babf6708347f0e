package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
)

// TestMonitoringAgainstBIND runs check --plugin, check --json and
// tick --metrics-file against a real BIND primary and secondary: first with
// the served chain's record published and aged, then with a chain file
// whose key has no record (CRITICAL).
func TestMonitoringAgainstBIND(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	// A Postfix instance directory without main.cf: tick's reload fails
	// (and no system Postfix is touched); the metrics are written anyway.
	editConfig(t, cfg, "", "", "\n[postfix]\nconfig_dir = \""+t.TempDir()+"\"\n")
	if code, out, errs := danectl(t, "publish", "--config", cfg); code != exitOK {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	danectl(t, "status", "--config", cfg) // the servers' first sightings
	time.Sleep(2100 * time.Millisecond)   // 2 x TTL: aged

	code, out, errs := danectl(t, "check", "--plugin", "--config", cfg)
	state, text, perf, _ := parsePlugin(t, out)
	// The lab zone is unsigned: a warning, nothing critical.
	if code != pluginWarning || state != "WARNING" || errs != "" || !strings.Contains(out, "not DNSSEC-signed") {
		t.Fatalf("check --plugin, aged record: exit %d, state %s (%s), stderr %q\n%s", code, state, text, errs, out)
	}
	if perf["seconds_until_aged"] != "0" || perf["servers_lagging"] != "0" || perf["servers_unreachable"] != "0" || perf["records_unowned_unmatched"] != "0" {
		t.Errorf("perfdata %v", perf)
	}
	if d, err := strconv.ParseFloat(perf["days_until_expiry"], 64); err != nil || d <= 0 || d > 0.05 {
		t.Errorf("days_until_expiry %q, want about 1 hour (the lab leaf's lifetime)", perf["days_until_expiry"])
	}

	code, out, errs = danectl(t, "check", "--json", "--config", cfg)
	var cr documentedCheck
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cr); err != nil || cr.Schema != 1 || len(cr.Status.Owners) != 1 || !cr.Status.Lineages[0].Protected || !cr.Live.OK {
		t.Fatalf("check --json: exit %d, %v, %+v\n%s%s", code, err, cr, out, errs)
	}
	checkTimes(t, []byte(out))

	metrics := filepath.Join(t.TempDir(), "danehook.prom")
	code, out, errs = danectl(t, "tick", "--config", cfg, "--metrics-file", metrics)
	if code == exitOK {
		t.Fatalf("tick with a broken Postfix instance: exit 0\n%s%s", out, errs)
	}
	fams := parseProm(t, metrics)
	owner := map[string]string{"owner": "_25._tcp.mail.example.test.", "zone": "example.test."}
	for _, w := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"danehook_tick_success", nil, 0},
		{"danehook_status_success", nil, 1},
		{"danehook_lineage_protected", map[string]string{"lineage": "mail"}, 1},
		{"danehook_owner_servers", owner, 2},
		{"danehook_owner_servers_lagging", owner, 0},
		{"danehook_owner_aged", owner, 1},
		{"danehook_owner_dnssec_signed", owner, 0},
	} {
		if v, ok := sample(fams, w.name, w.labels); !ok || v != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}

	// Another key in the chain file, by hand: it matches no aged record.
	chainFile := filepath.Join(filepath.Dir(cfg), "mail.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mail.example.test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(chainFile, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = danectl(t, "check", "--plugin", "--config", cfg)
	if state, text, _, _ := parsePlugin(t, out); code != pluginCritical || state != "CRITICAL" || !strings.Contains(text, "matches no aged record") {
		t.Errorf("check --plugin, chain file with an unpublished key: exit %d, %s - %s\n%s", code, state, text, out)
	}
	code, out, errs = danectl(t, "status", "--config", cfg)
	if code != exitMismatch || !strings.Contains(out, "UNPROTECTED _25._tcp.mail.example.test.: the served chain") || !strings.Contains(out, "  expires     ") {
		t.Errorf("status with an unprotected chain: exit %d\n%s%s", code, out, errs)
	}
}

// TestPluginLiveHandshake runs check --plugin against a real Postfix: OK
// (but for the unsigned lab zone) while smtpd presents the installed chain,
// CRITICAL once the installed file changed (its record published and aged)
// but smtpd, not reloaded, still presents the old one.
func TestPluginLiveHandshake(t *testing.T) {
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	pf := postfixlab.Start(t, postfixlab.Options{SMTPDProcessLimit: 1})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "danehook.toml")
	if err := os.WriteFile(cfg, []byte(`state_dir = "`+filepath.Join(dir, "state")+`"
[postfix]
config_dir = "`+pf.ConfigDir+`"
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
	publishAndAge := func() {
		t.Helper()
		if code, out, errs := danectl(t, "publish", "--config", cfg); code != exitOK {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
		}
		lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
		danectl(t, "status", "--config", cfg)
		time.Sleep(2100 * time.Millisecond)
	}
	publishAndAge()
	code, out, _ := danectl(t, "check", "--plugin", "--config", cfg)
	state, text, _, _ := parsePlugin(t, out)
	if code != pluginWarning || strings.Contains(out, "live STARTTLS") || !strings.Contains(out, "not DNSSEC-signed") {
		t.Fatalf("check --plugin, smtpd presents the installed chain: exit %d, %s - %s\n%s", code, state, text, out)
	}

	// A new chain file, its record published and aged; smtpd not reloaded.
	key, cert := postfixlab.SelfSigned(t, "mail.example.test", false)
	postfixlab.WriteChain(t, pf.ChainFiles[0], key, cert)
	publishAndAge()
	code, out, _ = danectl(t, "check", "--plugin", "--config", cfg)
	state, text, _, _ = parsePlugin(t, out)
	if code != pluginCritical || !strings.Contains(out, "live STARTTLS check") || strings.Contains(out, "UNPROTECTED") {
		t.Errorf("check --plugin, smtpd presents another chain than the installed one: exit %d, %s - %s\n%s", code, state, text, out)
	}
}
