package deploy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
)

// Found by this test and fixed: "child zone whose apex is a mail host
// (h070.example.test.)" and "(sub.example.test.)" failed while the owners
// of a host parent were placed in a zone by one probe and read from that
// zone's transfer: a zone on the same servers whose apex is a mail host's
// name, below example.test. without a delegation, was read from
// example.test.'s copy (the occluded records, or none), the secondary's
// copy agreed, Publish wrote the record and its claim where no query sees
// them, and the rerun planned nothing. The provider's own reads are now
// direct queries unless the provider's zone is configured (observeOwners).
//
// TestTransferBreak holds reads by zone transfer (decision X1) to direct
// reads on real BIND with adversarial but legal zone contents: wildcards
// at several depths (A and TLSA), empty non-terminals, DNAMEs above, at
// and beside owners, delegations at a host, at _tcp and at an owner,
// CNAME chains and loops, CNAMEs out of the zone and above an owner,
// mixed-case names in the zone data, one RRset added at two TTLs, a
// TLSA RRset too big for UDP, and zones on the same servers below
// example.test. without a delegation (at depth 1 and 2, and whose apex is
// a mail host, a _tcp name or an owner). Each case has 80 owners or more
// in example.test., so the transfer path runs; every owner's observation
// (zone, RRset with TTLs, claims, each server's state) must be the same
// with zone_transfers = false, before and after a publish by the
// transferring engine, and a rerun of that publish must plan nothing.
func TestTransferBreak(t *testing.T) {
	t.Parallel()
	hex := func(b string) string { return strings.Repeat(b, 32) }
	var big strings.Builder
	for i := range 40 {
		fmt.Fprintf(&big, "update add _25._tcp.h066.example.test. 300 IN TLSA 3 1 2 %s%02x\n", strings.Repeat("ab", 63), i)
	}
	for _, tc := range []struct {
		name       string
		zones      []string // besides example.test.
		extraHosts []string
		script     string
		noRerun    bool // the publish is expected to fail for some owner
	}{
		{name: "wildcard at the apex (A and TLSA)", script: `zone example.test.
update add *.example.test. 300 IN A 192.0.2.1
update add *.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add h001.example.test. 300 IN A 192.0.2.2
update add _25._tcp.h002.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
send
`},
		{name: "wildcards below hosts", script: `zone example.test.
update add *._tcp.h002.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add *.h003.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
update add *._25._tcp.h004.example.test. 300 IN TLSA 3 1 1 ` + hex("ef") + `
update add _25._tcp.h005.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add *._tcp.h005.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
update add *._tcp.h006.example.test. 300 IN TXT "wildcard TXT"
update add *.h007.example.test. 300 IN A 192.0.2.4
update add *.x._tcp.h008.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add *._danehook._25._tcp.h009.example.test. 300 IN TXT "danehook-claim host=mx2 tlsa=3 1 1 ` + hex("ab") + `"
send
`},
		{name: "empty non-terminals", script: `zone example.test.
update add x._25._tcp.h010.example.test. 300 IN TXT "below the owner"
update add _25._tcp.h011.example.test. 300 IN TXT "not a TLSA"
update add a.b.c._25._tcp.h012.example.test. 300 IN TXT "deep below"
update add x._danehook._25._tcp.h013.example.test. 300 IN TXT "below the registry name"
update add x.y._tcp.h014.example.test. 300 IN TXT "below _tcp"
send
`},
		{name: "DNAMEs", noRerun: true, script: `zone example.test.
update add h020.example.test. 300 IN DNAME h021.example.test.
update add _tcp.h022.example.test. 300 IN DNAME _tcp.h023.example.test.
update add _25._tcp.h023.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add _25._tcp.h024.example.test. 300 IN DNAME other.test.
update add _25._tcp.h024.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
update add _tcp.h025.example.test. 300 IN DNAME elsewhere.invalid.
update add _danehook._25._tcp.h026.example.test. 300 IN DNAME _danehook._25._tcp.h027.example.test.
update add _25._tcp.h026.example.test. 300 IN TLSA 3 1 1 ` + hex("ef") + `
send
`},
		{name: "delegations", noRerun: true, script: `zone example.test.
update add h030.example.test. 300 IN NS ns.h030.example.test.
update add ns.h030.example.test. 300 IN A 127.0.0.1
update add _25._tcp.h030.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add _tcp.h031.example.test. 300 IN NS ns.other.test.
update add _25._tcp.h032.example.test. 300 IN NS ns.other.test.
update add _danehook._25._tcp.h033.example.test. 300 IN NS ns.other.test.
send
`},
		{name: "CNAME chains and loops", noRerun: true, script: `zone example.test.
update add _25._tcp.h040.example.test. 300 IN CNAME _25._tcp.h041.example.test.
update add _25._tcp.h041.example.test. 300 IN CNAME _25._tcp.h042.example.test.
update add _25._tcp.h042.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add _25._tcp.h043.example.test. 300 IN CNAME _25._tcp.mx.other.test.
update add _25._tcp.h044.example.test. 300 IN CNAME target.h044.example.test.
update add _tcp.h045.example.test. 300 IN CNAME _tcp.h046.example.test.
update add _danehook._25._tcp.h047.example.test. 300 IN CNAME _danehook._25._tcp.h048.example.test.
update add _danehook._25._tcp.h048.example.test. 300 IN TXT "danehook-claim host=mx2 tlsa=3 1 1 ` + hex("ab") + `"
update add _25._tcp.h049.example.test. 300 IN CNAME _25._tcp.h049.example.test.
update add _25._tcp.h050.example.test. 300 IN CNAME _25._tcp.h051.example.test.
update add _25._tcp.h051.example.test. 300 IN CNAME _25._tcp.h050.example.test.
update add _25._tcp.h052.example.test. 300 IN CNAME *.h053.example.test.
update add *.h053.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
send
`},
		{name: "mixed case in the zone data", extraHosts: []string{"MX1.Example.Test", "mx2.example.test"}, script: `zone example.test.
update add _25._TCP.H060.EXAMPLE.TEST. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add _25._tcp.H061.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
update add _25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 ` + hex("ef") + `
update add _25._TCP.MX2.EXAMPLE.TEST. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add *.H063.Example.Test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
update add _DANEHOOK._25._TCP.H064.example.test. 300 IN TXT "danehook-claim host=mx2 tlsa=3 1 1 ` + hex("ab") + `"
update add _25._TCP.h065.example.test. 300 IN CNAME _25._tcp.H066.Example.Test.
send
`},
		{name: "two TTLs and a big RRset", noRerun: true, script: `zone example.test.
update add _25._tcp.h065.example.test. 3600 IN TLSA 3 1 1 ` + hex("ab") + `
update add _25._tcp.h065.example.test. 60 IN TLSA 3 1 1 ` + hex("cd") + `
` + big.String() + `send
`},
		{name: "child zones at depth 1 and 2", zones: []string{"sub.example.test.", "a.b.example.test."},
			extraHosts: []string{"s0.sub.example.test", "s1.sub.example.test", "x0.a.b.example.test", "x1.a.b.example.test", "q.b.example.test"},
			script: `zone example.test.
update add _25._tcp.s0.sub.example.test. 300 IN TLSA 3 1 1 ` + hex("ee") + `
update add _25._tcp.x0.a.b.example.test. 300 IN TLSA 3 1 1 ` + hex("ee") + `
send
zone sub.example.test.
update add _25._tcp.s1.sub.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
send
zone a.b.example.test.
update add _25._tcp.x1.a.b.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
send
`},
		// FAILS (decision X1 breaks here): a zone on the same servers
		// whose apex is a mail host, below example.test. without a
		// delegation. The probe of the host parent example.test.
		// (h000) places _25._tcp.h070.example.test. in example.test.;
		// the owner waits for that zone's transfer and Zone.Lookup takes
		// the records example.test. holds at that name (occluded: a
		// direct query answers from h070.example.test.). The transfer
		// path reads "eeee…" where the servers serve "abab…", the
		// propagation check (transfers of the secondary too) confirms
		// it, and Publish writes the TLSA record and the claim into
		// example.test. at that name, where nobody sees them; the rerun
		// plans nothing.
		{name: "child zone whose apex is a mail host (h070.example.test.)", zones: []string{"h070.example.test."}, script: `zone example.test.
update add _25._tcp.h070.example.test. 300 IN TLSA 3 1 1 ` + hex("ee") + `
send
zone h070.example.test.
update add _25._tcp.h070.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
send
`},
		// FAILS the same way: host sub.example.test, zone
		// sub.example.test. (depth 1, no occluded data in
		// example.test.): the transfer path reads no record where the
		// servers serve "abab…", and Publish adds into example.test.
		{name: "child zone whose apex is a mail host (sub.example.test.)", zones: []string{"sub.example.test."},
			extraHosts: []string{"sub.example.test"}, script: `zone sub.example.test.
update add _25._tcp.sub.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
send
`},
		// Agrees: host a.b.example.test, zone a.b.example.test. (depth
		// 2): the host's parent b.example.test. gets its own probe.
		{name: "child zone at depth 2 whose apex is a mail host (a.b.example.test.)", zones: []string{"a.b.example.test."},
			extraHosts: []string{"a.b.example.test"}, script: `zone example.test.
update add _25._tcp.a.b.example.test. 300 IN TLSA 3 1 1 ` + hex("ee") + `
send
zone a.b.example.test.
update add _25._tcp.a.b.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
send
`},
		// (config refuses a host with an escaped dot, so only the zone
		// data holds them.)
		{name: "escaped dot in the zone data", script: `zone example.test.
update add _25._tcp.h\.075.example.test. 300 IN TLSA 3 1 1 ` + hex("ab") + `
update add _25._tcp.h\.077.example.test. 300 IN TLSA 3 1 1 ` + hex("ef") + `
update add *.a\.b.example.test. 300 IN TLSA 3 1 1 ` + hex("cd") + `
send
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hosts []string
			for i := range 80 {
				hosts = append(hosts, fmt.Sprintf("h%03d.example.test", i))
			}
			hosts = append(hosts, tc.extraHosts...)
			zones := append([]string{"example.test."}, tc.zones...)
			lab := bindlab.Start(t, bindlab.Options{Zones: zones, TTL: 300, SecondaryTransfers: true})
			lab.Nsupdate(t, "check-names off\n"+tc.script)
			waitSecondary := func() {
				for _, z := range zones {
					lab.WaitSerial(t, lab.Secondary, z, lab.Serial(t, lab.Primary, z), 20*time.Second)
				}
			}
			waitSecondary()
			direct, _, _ := transferEngine(t, lab, hosts, "false", "mx1")
			e, _, dl := transferEngine(t, lab, hosts, "", "mx1")
			compare := func(when string) {
				t.Helper()
				want, err := direct.observe(t.Context(), observeOpts{})
				if err != nil {
					t.Fatalf("%s: direct: %v", when, err)
				}
				got, err := e.observe(t.Context(), observeOpts{})
				if err != nil {
					t.Fatalf("%s: transfer: %v", when, err)
				}
				w, g := observedText(t, want), observedText(t, got)
				if len(w) != len(g) {
					t.Errorf("%s: observed %d owners directly, %d by transfer:\n direct   %s\n transfer %s", when, len(w), len(g), strings.Join(w, "\n          "), strings.Join(g, "\n          "))
					return
				}
				for i := range w {
					if w[i] != g[i] {
						t.Errorf("%s: owner %d:\n direct   %s\n transfer %s", when, i, w[i], g[i])
					}
				}
			}
			compare("before publish")
			if d := dl.text(); !strings.Contains(d, "owners read from the zone transfer") {
				t.Errorf("the transfer path did not run:\n%s", d)
			}
			t.Logf("%s", dl.text())
			before := lab.Counters(t, "primary")
			_, perr := e.Publish(t.Context())
			t.Logf("publish: %d UPDATEs", lab.Counters(t, "primary").Requests["UPDATE"]-before.Requests["UPDATE"])
			if perr != nil {
				t.Logf("publish: %v", perr)
				if !tc.noRerun {
					t.Errorf("publish: %v", perr)
				}
			}
			waitSecondary()
			compare("after publish")
			if perr == nil {
				rerunSendsNothing(t, e, lab)
			}
		})
	}
}
