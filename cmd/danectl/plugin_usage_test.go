package main

import (
	"strings"
	"testing"
)

// TestPluginBadOption: a monitoring plugin answers a bad option with
// UNKNOWN (exit 3) and one status line, in more than one shape; without
// --plugin a bad option stays a usage error (exit 2).
func TestPluginBadOption(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--plugin", "--no-such-flag"},
		{"check", "--no-such-flag", "--plugin"},
		{"check", "--plugin", "--timeout", "soon"},
	} {
		code, out, _ := danectl(t, args...)
		if code != 3 || !strings.HasPrefix(out, "DANEHOOK UNKNOWN - bad option") {
			t.Errorf("danectl %s: exit %d, stdout %q; want 3 and a DANEHOOK UNKNOWN line", strings.Join(args, " "), code, out)
		}
	}
	if code, _, _ := danectl(t, "check", "--no-such-flag"); code != exitUsage {
		t.Errorf("check --no-such-flag without --plugin: exit %d, want %d", code, exitUsage)
	}
}
