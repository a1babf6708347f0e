package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/fixture"
)

// TestUnmanagedAndNotIssued: certbot runs the directory pre hook before
// renewing any certificate, a web server's too. With one lineage not
// issued yet and an unrelated certbot lineage, dane-prerenew touches
// neither, logs on stdout only, and exits 0.
func TestUnmanagedAndNotIssued(t *testing.T) {
	confDir := t.TempDir()
	web := filepath.Join(confDir, "renewal", "web.conf")
	fixture.WriteFile(t, web, []byte("[renewalparams]\nkey_type = ecdsa\n"))
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
	var out, errb bytes.Buffer
	code := run([]string{"dane-prerenew", "--config", cfg}, &out, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing on stderr", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=INFO") || !strings.Contains(lines[0], "first issuance") {
		t.Errorf("stdout %q; want one info line about the first issuance", out.String())
	}
	if b, _ := os.ReadFile(web); strings.Contains(string(b), "reuse_key") {
		t.Errorf("web.conf was changed: %s", b)
	}
	out.Reset()
	if code := run([]string{"dane-prerenew", "--quiet", "--config", cfg}, &out, &errb); code != 0 || out.Len()+errb.Len() != 0 {
		t.Errorf("--quiet: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// TestHookHelp: no "COMMANDS: help" in the hook's --help, and --version works.
func TestHookHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"dane-prerenew", "--help"}, &out, &errb); code != 0 || strings.Contains(out.String(), "COMMANDS") {
		t.Errorf("--help: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"dane-prerenew", "--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "dane-prerenew ") {
		t.Errorf("--version: exit %d: %q", code, out.String())
	}
}
