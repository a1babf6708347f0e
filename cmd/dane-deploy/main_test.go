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
