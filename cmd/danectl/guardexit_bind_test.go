package main

import (
	"testing"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
)

// TestExitUnsignedRequireDNSSEC: `danectl tick` (the timer) with
// require_dnssec = true and the lab's unsigned zone stops with exit 2 and
// a message naming the zone and the setting (README "Unsigned zone with
// require_dnssec (exit 2)"), before publishing anything.
func TestExitUnsignedRequireDNSSEC(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	// The lineage is the file's last table; a Postfix directory without
	// main.cf keeps the system's Postfix out of it.
	editConfig(t, cfg, "", "", "require_dnssec = true\n\n[postfix]\nconfig_dir = \""+t.TempDir()+"\"\n")
	before := lab.Counters(t, "primary").Requests["UPDATE"]
	code, out, errs := danectl(t, "tick", "--config", cfg)
	wantExit(t, "tick into an unsigned zone with require_dnssec", code, cliapp.ExitUsage, out, errs, `zone "example.test."`, "require_dnssec = true")
	if got := lab.Counters(t, "primary").Requests["UPDATE"] - before; got != 0 {
		t.Errorf("tick sent %d UPDATE(s) into the unsigned zone", got)
	}
}
