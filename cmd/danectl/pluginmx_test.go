package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestEvaluateMX: what pages and what warns in the MX view, by host state
// and thresholds, and the perfdata it gives.
func TestEvaluateMX(t *testing.T) {
	one, zero := 1, 0
	host := func(name string, st deploy.MXState, lineages ...string) deploy.MXHost {
		return deploy.MXHost{Host: name, State: st, OK: st == deploy.MXOK, Lineages: lineages, Problem: "problem of " + name}
	}
	rep := func(hosts ...deploy.MXHost) []*deploy.MXReport {
		return []*deploy.MXReport{{Domain: "example.test.", Server: "127.0.0.1:53", Hosts: hosts}}
	}
	defaults := thresholds{WarnMXUnreachable: &zero, WarnMXNoTLSA: &zero}
	tests := []struct {
		name    string
		reps    []*deploy.MXReport
		th      thresholds
		want    int
		text    string // in the first problem (or the summary)
		failing string
	}{
		{"all ok", rep(host("mx1", deploy.MXOK, "mail"), host("mx2", deploy.MXOK)), defaults, pluginOK, "2 MX host(s), 2 with every presented chain matching", "0"},
		{"unmanaged mismatch", rep(host("mx1", deploy.MXOK, "mail"), host("mx2", deploy.MXMismatch)), defaults, pluginCritical, "MX mx2 (unmanaged): problem of mx2", "1"},
		{"managed without STARTTLS", rep(host("mx1", deploy.MXNoSTARTTLS, "mail")), defaults, pluginCritical, "MX mx1 (lineage mail): problem of mx1", "1"},
		{"mismatch beats unreachable", rep(host("mx1", deploy.MXUnreachable), host("mx2", deploy.MXMismatch)), thresholds{CritMXUnreachable: &zero}, pluginCritical, "MX mx2", "1"},
		{"unreachable warns", rep(host("mx1", deploy.MXOK), host("mx2", deploy.MXUnreachable)), defaults, pluginWarning, "1 MX host(s) unreachable (warning above 0): mx2: problem of mx2", "0"},
		{"unreachable within the limit", rep(host("mx1", deploy.MXOK), host("mx2", deploy.MXUnreachable)), thresholds{WarnMXUnreachable: &one}, pluginOK, "2 MX host(s), 1 with", "0"},
		{"unreachable pages when asked", rep(host("mx1", deploy.MXUnreachable), host("mx2", deploy.MXUnreachable)), thresholds{WarnMXUnreachable: &zero, CritMXUnreachable: &one}, pluginCritical, "2 MX host(s) unreachable (critical above 1)", "0"},
		{"without TLSA warns", rep(host("mx1", deploy.MXNoTLSA)), defaults, pluginWarning, "1 MX host(s) without TLSA records", "0"},
		{"without TLSA off", rep(host("mx1", deploy.MXNoTLSA)), thresholds{}, pluginOK, "1 MX host(s), 0 with", "0"},
		{"lookup failed", rep(host("mx1", deploy.MXLookupFailed)), thresholds{}, pluginWarning, "MX mx1 (unmanaged): problem of mx1", "0"},
		{"handshake failed", rep(host("mx1", deploy.MXHandshakeFailed)), thresholds{}, pluginWarning, "problem of mx1", "0"},
		{"MX unreadable", []*deploy.MXReport{{Domain: "example.test.", Err: "query MX example.test. at 127.0.0.1:53: server answered REFUSED"}}, defaults, pluginUnknown, "MX of example.test.: query MX", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, perf, summary := evaluateMX(tt.reps, tt.th)
			res := pluginResult{Problems: problems, Summary: summary, Perf: perf}
			for _, p := range problems {
				res.State = worse(res.State, p.State)
			}
			sortProblems(res.Problems)
			if res.State != tt.want {
				t.Fatalf("state %s, want %s\n%s", pluginStateNames[res.State], pluginStateNames[tt.want], res)
			}
			state, text, pd, _ := parsePlugin(t, res.String())
			if state != pluginStateNames[tt.want] || !strings.Contains(text, tt.text) {
				t.Errorf("status line %q, want %s and %q", text, pluginStateNames[tt.want], tt.text)
			}
			if pd["mx_hosts_failing"] != tt.failing || pd["mx_hosts"] == "" {
				t.Errorf("perfdata %v, want mx_hosts_failing=%s", pd, tt.failing)
			}
		})
	}
}

// TestPluginMXAgainstBINDAndPostfix runs `check --plugin DOMAIN` against
// a signed BIND zone (primary and secondary) and a real Postfix that
// serves the managed host mail.example.test and, as the unmanaged
// mx2.example.test, the same chain: OK while mx2's TLSA record matches;
// CRITICAL once mx2's record matches nothing (the managed host staying
// fine), with `check DOMAIN` exiting 8 and `status DOMAIN` 1; WARNING for
// an MX host without an address and one without TLSA records, CRITICAL
// for the first with --critical-mx-unreachable 0, OK with both warnings
// off; WARNING for the managed lineage's lagging secondary; UNKNOWN for an
// MX RRset that cannot be read and for lineages and domains mixed.
func TestPluginMXAgainstBINDAndPostfix(t *testing.T) {
	lab := bindlab.Start(t, bindlab.Options{TTL: 1, Signed: true})
	pf := postfixlab.Start(t, postfixlab.Options{})
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
	served := leafRecord(t, pf.ChainFiles[0])
	update := func(script string) {
		t.Helper()
		lab.Nsupdate(t, script)
		lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	}
	if code, out, errs := danectl(t, "publish", "--config", cfg); code != exitOK {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	update(fmt.Sprintf(`update add example.test. 1 IN MX 10 mail.example.test.
update add example.test. 1 IN MX 20 mx2.example.test.
update add mx2.example.test. 1 IN A 127.0.0.1
update add _25._tcp.mx2.example.test. 1 IN TLSA %s
`, served))
	danectl(t, "status", "--config", cfg) // the servers' first sightings
	time.Sleep(2100 * time.Millisecond)   // 2 x TTL: aged

	port := strconv.Itoa(pf.Port)
	plugin := func(extra ...string) (int, string, string, map[string]string, string) {
		t.Helper()
		code, out, errs := danectl(t, append([]string{"check", "--plugin", "--config", cfg, "--smtp-port", port}, extra...)...)
		if errs != "" {
			t.Errorf("check --plugin %s wrote to stderr: %q", strings.Join(extra, " "), errs)
		}
		state, text, perf, _ := parsePlugin(t, out)
		return code, state, text, perf, out
	}

	code, state, text, perf, out := plugin("example.test")
	if code != pluginOK || state != "OK" || !strings.Contains(text, "example.test: 2 MX host(s), 2 with every presented chain matching") || !strings.Contains(text, "lineage(s) mail: ") {
		t.Fatalf("both MX hosts match: exit %d, want 0\n%s", code, out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("OK output is %d lines, want one:\n%s", strings.Count(out, "\n"), out)
	}
	for k, v := range map[string]string{"mx_hosts": "2", "mx_hosts_ok": "2", "mx_hosts_failing": "0", "mx_hosts_unreachable": "0", "mx_hosts_without_tlsa": "0", "seconds_until_aged": "0", "servers_lagging": "0"} {
		if perf[k] != v {
			t.Errorf("perfdata %s = %q, want %q (%v)", k, perf[k], v, perf)
		}
	}

	// mx2 (unmanaged, same Postfix) now publishes a record nothing matches.
	update(`update delete _25._tcp.mx2.example.test. TLSA
update add _25._tcp.mx2.example.test. 1 IN TLSA 3 1 1 ` + strings.Repeat("ab", 32) + "\n")
	code, state, text, perf, out = plugin("example.test")
	if code != pluginCritical || state != "CRITICAL" || !strings.HasPrefix(text, "MX mx2.example.test (unmanaged): the ecdsa chain presented at 127.0.0.1:"+port+" matches none of the TLSA records") {
		t.Fatalf("unmanaged MX whose chain matches nothing: exit %d, want 2\n%s", code, out)
	}
	if perf["mx_hosts_failing"] != "1" || perf["mx_hosts_ok"] != "1" || strings.Contains(out, "lineage mail:") {
		t.Errorf("perfdata %v, want one failing host and the managed one fine\n%s", perf, out)
	}
	if code, out, errs := danectl(t, "check", "--config", cfg, "--smtp-port", port, "example.test"); code != 8 || !strings.Contains(out, "MX 20 mx2.example.test: unmanaged: PROBLEM") || !strings.Contains(errs, "DANE senders defer mail to mx2.example.test") {
		t.Errorf("check DOMAIN with a failing MX: exit %d, want 8\n%s%s", code, out, errs)
	}
	if code, _, _ := danectl(t, "status", "--config", cfg, "--smtp-port", port, "example.test"); code != exitMismatch {
		t.Errorf("status DOMAIN with a failing MX: exit %d, want 1", code)
	}

	// mx2 without TLSA, and mx3 with a TLSA record but no address.
	update(`update delete _25._tcp.mx2.example.test. TLSA
update add example.test. 1 IN MX 30 mx3.example.test.
update add _25._tcp.mx3.example.test. 1 IN TLSA ` + served + "\n")
	code, state, _, perf, out = plugin("example.test")
	if code != pluginWarning || state != "WARNING" || !strings.Contains(out, "1 MX host(s) unreachable (warning above 0): mx3.example.test: no A or AAAA record") ||
		!strings.Contains(out, "WARNING: 1 MX host(s) without TLSA records (warning above 0): mx2.example.test") {
		t.Errorf("an MX host without address and one without TLSA: exit %d, want 1 and both named\n%s", code, out)
	}
	if perf["mx_hosts"] != "3" || perf["mx_hosts_unreachable"] != "1" || perf["mx_hosts_without_tlsa"] != "1" {
		t.Errorf("perfdata %v", perf)
	}
	if code, state, text, _, out := plugin("--critical-mx-unreachable", "0", "example.test"); code != pluginCritical || state != "CRITICAL" || !strings.HasPrefix(text, "1 MX host(s) unreachable (critical above 0)") {
		t.Errorf("--critical-mx-unreachable 0: exit %d, want 2\n%s", code, out)
	}
	if code, _, _, _, out := plugin("--warning-mx-unreachable", "", "--warning-mx-without-tlsa", "", "example.test"); code != pluginOK {
		t.Errorf("both MX warnings off: exit %d, want 0\n%s", code, out)
	}

	// The secondary stops taking transfers: the managed lineage's owner
	// has a lagging server.
	lab.BlockTransfers(t)
	lab.Nsupdate(t, "update add other.example.test. 1 IN TXT \"lag\"\n")
	code, _, _, perf, out = plugin("--warning-mx-unreachable", "", "--warning-mx-without-tlsa", "", "example.test")
	if code != pluginWarning || !strings.Contains(out, "server(s) lag behind the primary") || perf["servers_lagging"] != "1" {
		t.Errorf("the managed host's secondary lags: exit %d, want 1 and servers_lagging=1\n%s", code, out)
	}
	lab.UnblockTransfers(t)

	if code, state, text, _, out := plugin("nowhere.invalid"); code != pluginUnknown || state != "UNKNOWN" || !strings.Contains(text, "MX of nowhere.invalid.") {
		t.Errorf("an MX RRset that cannot be read: exit %d, want 3\n%s", code, out)
	}
	if code, _, text, _, out := plugin("mail", "example.test"); code != pluginUnknown || !strings.Contains(text, "not both") {
		t.Errorf("lineage and domain mixed: exit %d, want 3\n%s", code, out)
	}
	if code, _, text, _, out := plugin("--warning-mx-unreachable", "some", "example.test"); code != pluginUnknown || !strings.Contains(text, "--warning-mx-unreachable") {
		t.Errorf("a bad threshold: exit %d, want 3\n%s", code, out)
	}
}

// leafRecord returns the 3 1 1 record of the certificate in a chain file.
func leafRecord(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return "3 1 1 " + tlsa.SPKIDigestHex(c)
		}
	}
	t.Fatalf("%s: no certificate", file)
	return ""
}
