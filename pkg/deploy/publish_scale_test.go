package deploy

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
)

// scaleEngine configures owners TLSA owners in zone example.test. of a
// fresh BIND lab: lineages of up to 100 hosts each (the SAN limit of Let's
// Encrypt), each with its own key, published by one RFC 2136 provider with
// zone_transfers set to transfers, or (transfers "") the zone configured.
func scaleEngine(t *testing.T, owners int, transfers string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136) {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 300})
	dir := t.TempDir()
	ca := newCA(t)
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 5\n",
		filepath.Join(dir, "state"), lab.Primary, lab.KeyFile, lab.Port)
	if transfers != "" {
		fmt.Fprintf(&b, "zone_transfers = %s\n", transfers)
	} else {
		// The operator names the zone: its owners are read from one
		// transfer (without it, each owner's zone comes from a direct read).
		b.WriteString("zone = \"example.test.\"\n")
	}
	for l := 0; l*100 < owners; l++ {
		var hosts []string
		for h := l * 100; h < min(owners, (l+1)*100); h++ {
			hosts = append(hosts, strconv.Quote(fmt.Sprintf("h%05d.example.test", h)))
		}
		chainFile := filepath.Join(dir, fmt.Sprintf("l%03d.pem", l))
		k, c, _ := ca.issue(t, nil)
		writeFile(t, chainFile, k, c)
		fmt.Fprintf(&b, "[lineage.l%03d]\nhosts = [%s]\nttl = 300\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\n",
			l, strings.Join(hosts, ", "), chainFile)
	}
	path := filepath.Join(dir, "danehook.toml")
	cfg, err := config.Parse(path, []byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rp := labPublisher(t, cfg)
	// No watch after the UPDATEs: the SOA count below is the reads'
	// (watchPublished has its own test).
	noWatch := time.Duration(0)
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second, PublishWait: &noWatch}
	return e, lab, rp
}

// TestPublishManyOwnersOneZone publishes 1,000 and 5,000 owners in one
// zone on a real BIND (which refused the single 67 kB UPDATE the engine
// once sent for 1,000): Publish succeeds with as few UPDATE messages as hold
// the records (the server counts them), every owner is served on the
// primary and the secondary, zone discovery costs no SOA query per owner,
// and a rerun plans nothing and sends 0 UPDATEs.
func TestPublishManyOwnersOneZone(t *testing.T) {
	t.Parallel()
	// Each owner that gets an addition carries the "no CNAME" prerequisite:
	// 12 bytes with name compression for the first ~585 owners of a
	// message, 28 past 16 KB, where a name can no longer be the target of
	// a compression pointer (RFC 1035 §4.1.4: 14-bit offsets) and the
	// update's own name is written out again. So a message holds 821 of
	// these additions (1,040 without the guard, about 860 for nsupdate,
	// which does not compress): 1,000 additions take 2 messages and 5,000
	// take 7 (nsupdate: 2 and 6).
	//
	// The primary allows the key zone transfers (bindlab) and the zone is
	// configured, so the owners are read from one AXFR (decision X1);
	// with zone_transfers = false (and zone discovery), by one TLSA query
	// each.
	for _, tc := range []struct {
		owners, messages int
		transfers        string
	}{{1000, 2, ""}, {5000, 7, ""}, {1000, 2, "false"}} {
		t.Run(fmt.Sprintf("%d/zone_transfers=%s", tc.owners, tc.transfers), func(t *testing.T) {
			e, lab, rp := scaleEngine(t, tc.owners, tc.transfers)
			before := lab.Counters(t, "primary")
			start := time.Now()
			plans, err := e.Publish(t.Context())
			if err != nil {
				t.Fatalf("Publish of %d owners: %v", tc.owners, err)
			}
			t.Logf("Publish of %d owners: %v, %+v", tc.owners, time.Since(start), rp.Sent())
			after := lab.Counters(t, "primary")
			if got := after.Requests["UPDATE"] - before.Requests["UPDATE"]; got != uint64(tc.messages) || rp.Sent().Updates != int64(tc.messages) {
				t.Errorf("server counted %d UPDATEs, provider sent %d; want %d", got, rp.Sent().Updates, tc.messages)
			}
			// Two per batch of observeBatch owners (the zone's serial at the
			// primary, as primary and as one of the servers), two for the
			// zone's view check (sharedread.go) and the secondary's (one per
			// NOTIFY, so per UPDATE, at most), none per owner.
			if got, most := after.Queries["SOA"]-before.Queries["SOA"], uint64(2*((tc.owners+observeBatch-1)/observeBatch)+4+tc.messages); got > most {
				t.Errorf("primary answered %d SOA queries for one zone, want at most %d (not one per owner)", got, most)
			}
			// The primary's RRset is read once per owner, shared by the plan
			// and the propagation check, and unsigned: the signed requests
			// are the UPDATEs, the view check's SOA query and the
			// secondary's (a signed SOA query and IXFR per NOTIFY at most),
			// where reading signed made one per owner.
			tlsaQueries, axfr := after.Queries["TLSA"]-before.Queries["TLSA"], after.Queries["AXFR"]-before.Queries["AXFR"]
			signedMost := uint64(3*tc.messages + 1) // the UPDATEs, one SOA query, the secondary's transfers
			if tc.transfers == "false" {
				if tlsaQueries != uint64(tc.owners) || axfr != 0 {
					t.Errorf("primary answered %d TLSA queries and %d AXFRs for %d owners, want one query each and no AXFR", tlsaQueries, axfr, tc.owners)
				}
			} else {
				// One AXFR (signed) from the engine and no TLSA query; the
				// secondary's own AXFR (the lab's, at start) is not counted.
				if tlsaQueries != 0 || axfr != 1 {
					t.Errorf("primary answered %d TLSA queries and %d AXFRs for %d owners, want 0 and 1", tlsaQueries, axfr, tc.owners)
				}
				signedMost++
			}
			if got := after.Server["requests with TSIG received"] - before.Server["requests with TSIG received"]; got > signedMost {
				t.Errorf("primary received %d signed requests, want at most %d (the UPDATEs, one SOA query, the secondary's transfers, ours)", got, signedMost)
			}
			added := 0
			for _, p := range plans {
				if p.ZoneMessages != tc.messages {
					t.Fatalf("plan of %s says %d UPDATE messages, want %d", p.Owner, p.ZoneMessages, tc.messages)
				}
				for _, c := range p.Changes {
					if c.Op == dnsupdate.Add {
						added++
					}
				}
			}
			if added != tc.owners {
				t.Errorf("Publish added %d records, want %d", added, tc.owners)
			}
			// Every owner served by the primary; a sample on the secondary
			// once it caught up.
			serial := lab.Serial(t, lab.Primary, "example.test.")
			lab.WaitSerial(t, lab.Secondary, "example.test.", serial, 20*time.Second)
			for i := 0; i < tc.owners; i++ {
				addrs := []string{lab.Primary}
				if i%97 == 0 {
					addrs = append(addrs, lab.Secondary)
				}
				for _, a := range addrs {
					o := fmt.Sprintf("_25._tcp.h%05d.example.test.", i)
					if n := tlsaCount(t, a, o); n != 1 {
						t.Fatalf("%s serves %d TLSA records at %s, want 1", a, n, o)
					}
				}
			}

			rerunSendsNothing(t, e, lab)
		})
	}
}

// rerunSendsNothing publishes again with e and fails t when the rerun
// plans a change or lab's primary counts an UPDATE.
func rerunSendsNothing(t *testing.T, e *Engine, lab *bindlab.Lab) {
	t.Helper()
	before := lab.Counters(t, "primary")
	plans, err := e.Publish(t.Context())
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	for _, p := range plans {
		if !p.Changes.Empty() {
			t.Fatalf("rerun planned changes at %s:\n%s", p.Owner, p.Changes)
		}
	}
	if got := lab.Counters(t, "primary").Requests["UPDATE"] - before.Requests["UPDATE"]; got != 0 {
		t.Errorf("rerun: server counted %d UPDATEs, want 0", got)
	}
}

// tlsaCount asks addr directly (TCP, no recursion) how many TLSA records
// owner has.
func tlsaCount(t *testing.T, addr, owner string) int {
	t.Helper()
	return len(serverTLSA(t, addr, owner))
}
