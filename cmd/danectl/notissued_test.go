package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
)

// TestNotIssuedYet: the README's order configures a lineage before its
// first issuance; status, check and tick report "not issued yet" for it
// and exit 0 (the timer must not show as failed), status --json carries it
// as a field.
func TestNotIssuedYet(t *testing.T) {
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	live := filepath.Join(t.TempDir(), "live", "mail")
	cfg, _ := fixture.LabConfig(t, lab, `certbot_lineage = "`+live+`"`+"\n")
	for _, cmd := range [][]string{{"status"}, {"check"}, {"tick"}} {
		code, out, errs := danectl(t, append(cmd, "--config", cfg)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", cmd[0], code, out, errs)
		}
		if !strings.Contains(strings.ToLower(out), "not issued yet") || !strings.Contains(out, live) {
			t.Errorf("%s: stdout does not report lineage mail as not issued yet (naming %s):\n%s", cmd[0], live, out)
		}
		if errs != "" {
			t.Errorf("%s: stderr %q, want nothing", cmd[0], errs)
		}
	}
	code, out, errs := danectl(t, "status", "--json", "--config", cfg)
	var st struct {
		Lineages []struct {
			Name      string `json:"name"`
			NotIssued bool   `json:"not_issued"`
		} `json:"lineages"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || len(st.Lineages) != 1 || !st.Lineages[0].NotIssued {
		t.Errorf("status --json: exit %d, %v, %+v\n%s%s", code, err, st, out, errs)
	}
}
