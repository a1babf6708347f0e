package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
)

// TestNotIssuedYet: certbot runs the directory post hook after renewing
// any certificate. With the only lineage configured before its first
// issuance, dane-reload (against real BIND) reports it as not issued yet
// in one info line on stdout, nothing on stderr, and exits 0; the JSON
// form parses.
func TestNotIssuedYet(t *testing.T) {
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	live := filepath.Join(t.TempDir(), "live", "mail")
	cfg, _ := fixture.LabConfig(t, lab, `certbot_lineage = "`+live+`"`+"\n")
	for _, format := range []string{"text", "json"} {
		var out, errb bytes.Buffer
		code := run([]string{"dane-reload", "--config", cfg, "--log-format", format}, &out, &errb)
		if code != 0 || errb.Len() != 0 {
			t.Fatalf("%s: exit %d, stderr %q; want 0 and nothing on stderr", format, code, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "not issued yet") || !strings.Contains(lines[0], live) {
			t.Fatalf("%s: stdout %q; want one info line naming %s", format, out.String(), live)
		}
		if format == "json" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["level"] != "INFO" {
				t.Errorf("json line %q: %v %v", lines[0], rec, err)
			}
		}
	}
}

// TestHookHelp: no "COMMANDS: help" in the hook's --help, and --version works.
func TestHookHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"dane-reload", "--help"}, &out, &errb); code != 0 || strings.Contains(out.String(), "COMMANDS") {
		t.Errorf("--help: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"dane-reload", "--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "dane-reload ") {
		t.Errorf("--version: exit %d: %q", code, out.String())
	}
}
