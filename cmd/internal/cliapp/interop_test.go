package cliapp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/dnslab"
	"github.com/danehook/danehook/internal/knotlab"
	"github.com/danehook/danehook/internal/pdnslab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestInteropExitCodes sends a failing UPDATE to a real BIND, Knot DNS and
// PowerDNS through the configured provider (NewPublisher, as danectl does)
// and checks the exit code and hint Classify gives each error class, and
// that the code is a row of the README's "Exit codes" table. The servers
// answer the same failure differently (dnsupdate/diagnose.go); the exit
// code must not depend on which one answered.
func TestInteropExitCodes(t *testing.T) {
	t.Parallel()
	documented := readmeCodes(t)
	for _, srv := range []struct {
		name  string
		start func(testing.TB, dnslab.Options) *dnslab.Lab
	}{
		{"BIND", dnslab.StartBIND},
		{"Knot", knotlab.Start},
		{"PowerDNS", pdnslab.Start},
	} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			l := srv.start(t, dnslab.Options{ExtraKeys: []dnslab.ExtraKey{{Name: "denied"}}})
			dir := t.TempDir()
			wrong := filepath.Join(dir, "wrong.secret")
			if err := os.WriteFile(wrong, []byte(base64.StdEncoding.EncodeToString([]byte("not the secret"))), 0o600); err != nil {
				t.Fatal(err)
			}
			right := filepath.Join(dir, "right.secret")
			if err := os.WriteFile(right, []byte(l.Key.Secret), 0o600); err != nil {
				t.Fatal(err)
			}
			owner := "_25._tcp.mail.example.test."
			for _, tc := range []struct {
				name  string
				prov  config.Provider
				owner string
				code  int
				hint  string
			}{
				{"wrong secret", config.Provider{KeyName: l.Key.Name, SecretFile: wrong}, owner, ExitTSIG, "secret"},
				{"unknown key", config.Provider{KeyName: "nosuchkey.", SecretFile: right}, owner, ExitTSIG, "key"},
				{"key granted nothing", config.Provider{KeyFile: l.Keys["denied."].File}, owner, ExitRefused, "TSIG-ALLOW-DNSUPDATE"},
				{"zone not served", config.Provider{KeyFile: l.Key.File, Zone: "nothere.test."}, "_25._tcp.mail.nothere.test.", ExitNotAuth, "zone"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					prov := tc.prov
					prov.Name, prov.Type, prov.Server, prov.Timeout = "lab", "rfc2136", l.Primary, 5
					if prov.Zone == "" {
						prov.Zone = "example.test."
					}
					pub, err := NewPublisher(&prov)
					if err != nil {
						t.Fatalf("NewPublisher: %v", err)
					}
					rec := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{0x42}, 32)}
					err = pub.Apply(t.Context(), dnsupdate.Plan{{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: tc.owner, TTL: 60, Record: rec}}})
					got := Classify(err)
					var ee *Error
					if !errors.As(got, &ee) {
						t.Fatalf("Classify(%v): got %T, want *Error", err, got)
					}
					t.Logf("%s: exit %d: %v", l.Product, ee.Code, err)
					if ee.Code != tc.code || !slices.Contains(documented, ee.Code) {
						t.Errorf("exit code %d, want %d (a row of the README's table)", ee.Code, tc.code)
					}
					if !strings.Contains(ee.Hint, tc.hint) || !strings.Contains(err.Error(), l.Primary) {
						t.Errorf("hint %q, want it to mention %q; message %q, want it to name %s", ee.Hint, tc.hint, err, l.Primary)
					}
					if strings.Contains(err.Error(), l.Key.Secret) || strings.Contains(ee.Hint, l.Key.Secret) {
						t.Fatal("the message holds the key's secret")
					}
				})
			}
		})
	}
}
