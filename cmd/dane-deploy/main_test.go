package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
