package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/internal/postfixlab"
)

// TestPostfixReadingOtherFilesExits8: while Postfix's smtpd reads a TLS
// file that exists and is not the lineage's chain file (here a snakeoil
// certificate through smtpd_tls_chain_files, read with postconf from a
// real Postfix configuration), 'danectl status', 'check' and 'tick' exit
// 8 as the hooks do, naming the service and the parameter, with the
// postconf line on the hint line; tick still publishes the record (issue
// 9 item 5). With the chain file named instead, status is back to
// waiting (exit 1) or OK.
func TestPostfixReadingOtherFilesExits8(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	dir := t.TempDir()
	snake := filepath.Join(dir, "ssl-cert-snakeoil.pem")
	k, c := postfixlab.SelfSigned(t, "mail.example.test", false)
	if err := os.WriteFile(snake, append(k, c...), 0o600); err != nil {
		t.Fatal(err)
	}
	pfDir := filepath.Join(dir, "postfix")
	fixture.WritePostfixConfig(t, pfDir, snake)
	editConfig(t, cfg, "", "", fmt.Sprintf("[postfix]\nconfig_dir = %q\n", pfDir))

	for _, cmd := range []string{"tick", "status", "check"} {
		code, out, errs := danectl(t, cmd, "--config", cfg)
		if code != cliapp.ExitPostfix {
			t.Fatalf("%s while Postfix reads %s: exit %d, want %d\n%s%s", cmd, snake, code, cliapp.ExitPostfix, out, errs)
		}
		for _, want := range []string{`service "smtp/inet" reads smtpd_tls_chain_files`, snake, "(main.cf)", "hint: run: postconf -c " + pfDir + " -e 'smtpd_tls_chain_files = "} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, errs)
			}
		}
	}
	if code, out, errs := danectl(t, "status", "--json", "--config", cfg); code != cliapp.ExitPostfix || !strings.Contains(out, `"error": "lineage \"mail\": postfix does not read`) {
		t.Errorf("status --json: exit %d, want %d with the lineage's error\n%s%s", code, cliapp.ExitPostfix, out, errs)
	}
	// tick published the served chain file's record before refusing.
	if code, out, errs := danectl(t, "plan", "--config", cfg); code != exitOK {
		t.Errorf("plan after the refusing tick: exit %d, want 0 (the record was published)\n%s%s", code, out, errs)
	}

	// Postfix reads the chain file: no refusal.
	b, _ := os.ReadFile(cfg)
	var chainFile string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "chain_file = "); ok {
			chainFile = strings.Trim(v, `"`)
		}
	}
	fixture.WritePostfixConfig(t, pfDir, chainFile)
	if code, out, errs := danectl(t, "status", "--config", cfg); code == cliapp.ExitPostfix || strings.Contains(out+errs, "postconf") {
		t.Errorf("status with Postfix reading the chain file: exit %d\n%s%s", code, out, errs)
	}
}
