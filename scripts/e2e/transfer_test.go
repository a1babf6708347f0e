package e2e

import (
	"strings"
	"testing"
)

// TestManyOwnersByTransfer: a certbot lineage with 251 TLSA owners in one
// zone (its host on the Postfix port and 250 more ports), the zone named
// in the provider, so every run
// reads the zone by AXFR at both servers (decision X1 in
// pkg/dnsupdate/transfer.go) instead of a query per owner: the first
// issuance, a same-key and a new-key renewal go through publish → age →
// switch → removal with the judge sampling throughout, as with direct
// reads, and a tick at --verbose says the owners came from the transfers.
func TestManyOwnersByTransfer(t *testing.T) {
	t.Parallel()
	w := newWorldOpts(t, clients[0], worldOptions{SecondaryTransfers: true})
	w.extraPorts = 250
	// The zone named: the primary's copy places the owners too (without
	// it they are read directly there, each answer proving its zone).
	w.providerExtra = "zone = \"" + zone + "\"\n"
	w.writeConfig(w.bind.KeyFile)
	w.run(t, []step{
		{"first-issuance", (*world).firstIssuance, ""},
		{"renew-same-key", (*world).renewSameKey, ""},
		{"renew-new-key", func(w *world) { w.renewNewKey(true) }, ""},
		{"read-by-transfer", func(w *world) {
			r := w.danectl("tick", "--verbose")
			if r.code != 0 {
				w.t.Fatalf("%v", r)
			}
			for _, want := range []string{
				"owners read from the zone transfer\" provider=lab zone=example.test. server=" + w.bind.Primary,
				"owners read from the zone transfer\" server=" + w.bind.Secondary,
			} {
				if !strings.Contains(r.out, want) {
					t.Errorf("danectl tick --verbose does not say %q:\n%s", want, r.out)
				}
			}
			if strings.Contains(r.out, "reading owner by owner") {
				t.Errorf("a server was read owner by owner:\n%s", r.out)
			}
		}, "reads only"},
	})
}
