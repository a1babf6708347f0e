package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/fixture"
)

func TestNoHookEnvironment(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"dane-deploy"}, &out, &errb, func(string) string { return "" })
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{"dane-deploy: error:", "RENEWED_LINEAGE", "LEGO_HOOK_CERT_PATH", "post hook"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q does not mention %q", errb.String(), want)
		}
	}
}

func TestMissingFileNamesVariable(t *testing.T) {
	env := map[string]string{
		"LEGO_HOOK_CERT_NAME":     "mail.example.test",
		"LEGO_HOOK_CERT_PATH":     "/nonexistent/mail.crt",
		"LEGO_HOOK_CERT_KEY_PATH": "/nonexistent/mail.key",
	}
	var out, errb bytes.Buffer
	code := run([]string{"dane-deploy"}, &out, &errb, func(k string) string { return env[k] })
	if code != 2 || !strings.Contains(errb.String(), "LEGO_HOOK_CERT_KEY_PATH") {
		t.Fatalf("exit %d, stderr %q; want 2 naming LEGO_HOOK_CERT_KEY_PATH", code, errb.String())
	}
}

func TestMissingConfig(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "mail")
	os.MkdirAll(live, 0o700)
	for _, f := range []string{"privkey.pem", "cert.pem", "chain.pem"} {
		os.WriteFile(filepath.Join(live, f), []byte("x"), 0o600)
	}
	cfg := filepath.Join(dir, "none.toml")
	var out, errb bytes.Buffer
	code := run([]string{"dane-deploy", "--config", cfg}, &out, &errb, func(k string) string {
		return map[string]string{"RENEWED_LINEAGE": live}[k]
	})
	if code != 2 || !strings.Contains(errb.String(), cfg) || !strings.Contains(errb.String(), "hint:") {
		t.Fatalf("exit %d, stderr %q; want 2 naming %s with a hint", code, errb.String(), cfg)
	}
}

// TestDehydratedHandlers: dehydrated runs its hook for every handler and
// aborts when one it does not know fails (hookscript_bricker_hook), so
// dane-deploy ignores everything but deploy_cert, without reading the
// configuration.
func TestDehydratedHandlers(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "none.toml")
	for _, args := range [][]string{
		{"this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks_in_your_script"},
		{"startup_hook"},
		{"exit_hook", "some error"},
		{"deploy_challenge", "mail.example.test", "token", "keyauth"},
		{"unchanged_cert", "mail.example.test", "/k", "/c", "/f", "/ch"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"dane-deploy", "--config", cfg}, args...), &out, &errb, func(string) string { return "" })
		if code != 0 {
			t.Errorf("dane-deploy %s: exit %d, want 0 (ignored); stderr:\n%s", args[0], code, errb.String())
		}
	}
}

func TestDehydratedDeployCertErrors(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, f := range []string{"privkey.pem", "cert.pem", "fullchain.pem"} {
		p := filepath.Join(dir, f)
		os.WriteFile(p, []byte("x"), 0o600)
		files = append(files, p)
	}
	tests := []struct {
		args []string
		want string
	}{
		{append([]string{"deploy_cert", "mail.example.test"}, files...), "4 argument(s) after deploy_cert"},
		{append(append([]string{"deploy_cert", "mail.example.test"}, files...), filepath.Join(dir, "chain.pem"), "1700000000"), "CHAINFILE"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(append([]string{"dane-deploy"}, tt.args...), &out, &errb, func(string) string { return "" })
		if code != 2 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("dane-deploy %q: exit %d, stderr %q; want 2 naming %q", tt.args, code, errb.String(), tt.want)
		}
	}
}

// certbotWeb writes a certbot configuration directory with one lineage
// "web" (a web server's certificate danehook does not manage) and returns
// the directory and the lineage's live directory.
func certbotWeb(t *testing.T) (confDir, live string) {
	t.Helper()
	confDir = t.TempDir()
	live = filepath.Join(confDir, "live", "web")
	k, c, _ := fixture.NewCA(t).Issue(t, nil)
	fixture.WriteFile(t, filepath.Join(live, "privkey.pem"), k)
	fixture.WriteFile(t, filepath.Join(live, "cert.pem"), c)
	fixture.WriteFile(t, filepath.Join(live, "chain.pem"), c)
	fixture.WriteFile(t, filepath.Join(live, "fullchain.pem"), c)
	fixture.WriteFile(t, filepath.Join(confDir, "renewal", "web.conf"), []byte("[renewalparams]\nkey_type = ecdsa\n"))
	return confDir, live
}

// TestUnmanagedLineage: certbot's directory deploy hook runs for a web
// server's certificate too; dane-deploy logs one info line on stdout,
// nothing on stderr (certbot logs stderr as WARNING), and exits 0, in both
// log formats.
func TestUnmanagedLineage(t *testing.T) {
	confDir, live := certbotWeb(t)
	cfg := filepath.Join(t.TempDir(), "danehook.toml")
	fixture.WriteFile(t, cfg, []byte(`state_dir = "`+filepath.Join(confDir, "state")+`"
[provider.p]
type = "rfc2136"
server = "127.0.0.1:1"
key_file = "/nonexistent/tsig.key"
[lineage.mail]
hosts = ["mail.example.test"]
provider = "p"
chain_file = "`+filepath.Join(confDir, "mail.pem")+`"
certbot_lineage = "`+filepath.Join(confDir, "live", "mail")+`"
`))
	env := map[string]string{"RENEWED_LINEAGE": live, "RENEWED_DOMAINS": "www.example.test"}
	for _, format := range []string{"text", "json"} {
		var out, errb bytes.Buffer
		code := run([]string{"dane-deploy", "--config", cfg, "--log-format", format}, &out, &errb, func(k string) string { return env[k] })
		if code != 0 || errb.Len() != 0 {
			t.Fatalf("%s: exit %d, stderr %q; want 0 and nothing on stderr", format, code, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "not a lineage danehook manages") || !strings.Contains(lines[0], "web") {
			t.Fatalf("%s: stdout %q; want one info line naming lineage web", format, out.String())
		}
		if format == "json" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["level"] != "INFO" || rec["lineage"] != "web" {
				t.Errorf("json line %q: %v %v", lines[0], rec, err)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(confDir, "renewal", "web.conf")); strings.Contains(string(b), "reuse_key") {
		t.Errorf("web.conf was changed: %s", b)
	}
	// --verbose: debug lines on stdout too (the hook environment), still
	// nothing on stderr.
	var vout, verr bytes.Buffer
	if code := run([]string{"dane-deploy", "--verbose", "--config", cfg}, &vout, &verr, func(k string) string { return env[k] }); code != 0 || verr.Len() != 0 ||
		!strings.Contains(vout.String(), "level=DEBUG msg=\"hook environment\"") || !strings.Contains(vout.String(), "level=DEBUG msg=\"configuration loaded\"") {
		t.Errorf("--verbose: exit %d, stdout %q, stderr %q; want debug lines on stdout", code, vout.String(), verr.String())
	}
	// --quiet: nothing at all.
	var out, errb bytes.Buffer
	if code := run([]string{"dane-deploy", "--quiet", "--config", cfg}, &out, &errb, func(k string) string { return env[k] }); code != 0 || out.Len()+errb.Len() != 0 {
		t.Errorf("--quiet: exit %d, stdout %q, stderr %q; want 0 and silence", code, out.String(), errb.String())
	}
}

// TestHookHelp: no "COMMANDS: help" in the hook's --help, and --version works.
func TestHookHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"dane-deploy", "--help"}, &out, &errb, func(string) string { return "" }); code != 0 || strings.Contains(out.String(), "COMMANDS") {
		t.Errorf("--help: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"dane-deploy", "--version"}, &out, &errb, func(string) string { return "" }); code != 0 || !strings.HasPrefix(out.String(), "dane-deploy ") {
		t.Errorf("--version: exit %d: %q", code, out.String())
	}
}
