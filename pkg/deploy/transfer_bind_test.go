package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Reads by zone transfer (decision X1, pkg/dnsupdate/transfer.go;
// observeOwners). These tests hold the transferred observation to the
// direct one on real BIND: the same zones, RRsets, TTLs and per-server
// states for every owner, whatever the zone holds (records of others at
// another TTL, a CNAME owner, a zone below another one without a
// delegation), with the servers' own counters showing which path ran.

// transferEngine returns an engine over lab whose lineages ("l000", …, up
// to 100 hosts each) cover hosts, with zone_transfers as given ("" leaves
// it unset) and host_id when not "", and the debug lines it reports.
func transferEngine(t *testing.T, lab *bindlab.Lab, hosts []string, transfers, hostID string) (*Engine, *dnsupdate.RFC2136, *debugLines) {
	t.Helper()
	return transferEngineZone(t, lab, hosts, transfers, hostID, "")
}

// transferEngineZone is transferEngine with the provider's zone setting
// (none when ""), or its zones setting when zone is a TOML array
// ("[\"a.test.\", \"b.test.\"]").
func transferEngineZone(t *testing.T, lab *bindlab.Lab, hosts []string, transfers, hostID, zone string) (*Engine, *dnsupdate.RFC2136, *debugLines) {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t)
	var b strings.Builder
	if hostID != "" {
		fmt.Fprintf(&b, "host_id = %q\n", hostID)
	}
	fmt.Fprintf(&b, "state_dir = %q\n[schedule]\npublish_wait = \"0s\"\nvia = \"none\"\n[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 5\n",
		filepath.Join(dir, "state"), lab.Primary, lab.KeyFile, lab.Port)
	if transfers != "" {
		fmt.Fprintf(&b, "zone_transfers = %s\n", transfers)
	}
	switch {
	case strings.HasPrefix(zone, "["):
		fmt.Fprintf(&b, "zones = %s\n", zone) // a TOML array: the zones setting
	case zone != "":
		fmt.Fprintf(&b, "zone = %q\n", zone)
	}
	for l := 0; l*100 < len(hosts); l++ {
		var hs []string
		for _, h := range hosts[l*100 : min(len(hosts), (l+1)*100)] {
			hs = append(hs, strconv.Quote(h))
		}
		chainFile := filepath.Join(dir, fmt.Sprintf("l%03d.pem", l))
		k, c, _ := ca.issue(t, nil)
		writeFile(t, chainFile, k, c)
		fmt.Fprintf(&b, "[lineage.l%03d]\nhosts = [%s]\nttl = 300\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\n",
			l, strings.Join(hs, ", "), chainFile)
	}
	cfg, err := config.Parse(filepath.Join(dir, "danehook.toml"), []byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rp := labPublisher(t, cfg)
	dl := &debugLines{}
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second, Debug: dl.add}
	return e, rp, dl
}

// observedText is, per owner of s in order, what the run observed: the
// zone, the provider's RRset with TTLs, and each server's state.
func observedText(t *testing.T, s *snapshot) []string {
	t.Helper()
	var out []string
	for _, ov := range s.Owners {
		if ov.Err != nil {
			out = append(out, fmt.Sprintf("%s (aliases %v): error %v", ov.Owner, ov.Aliases, ov.Err))
			continue
		}
		var cur []string
		for _, rr := range ov.Current {
			cur = append(cur, fmt.Sprintf("%d %s", rr.TTL, rr.Record))
		}
		slices.Sort(cur)
		var claims []string
		for _, c := range ov.Claims {
			claims = append(claims, c.Text())
		}
		line := fmt.Sprintf("%s (aliases %v) zone %s current %q claims %q", ov.Owner, ov.Aliases, ov.Zone, cur, claims)
		for _, sv := range ov.Obs.Servers {
			line += fmt.Sprintf(" | %s serial %d ttl %d reachable %t lagging %t %q", sv.Server.Addr, sv.Serial, sv.TTL, sv.Reachable, sv.Lagging, recordText(sv.Records))
		}
		out = append(out, line)
	}
	return out
}

func recordText(recs []tlsa.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.String())
	}
	return out
}

// TestObserveByTransfer: 260 owners in example.test. and 210 in
// sub.example.test. (a zone on the same servers without a delegation in
// its parent: a direct query answers from it), some with records of
// others at another TTL, one a CNAME, one with a registry claim of
// another host (host_id is set), observed with transfers allowed
// at both servers, at the primary only, and with zone_transfers = false:
// every owner's observation is the same, and the servers answered one
// TLSA query per owner only where no transfer was possible.
func TestObserveByTransfer(t *testing.T) {
	t.Parallel()
	var hosts []string
	for i := range 260 {
		hosts = append(hosts, fmt.Sprintf("h%03d.example.test", i))
	}
	for i := range 210 {
		hosts = append(hosts, fmt.Sprintf("s%03d.sub.example.test", i))
	}
	for _, tc := range []struct {
		name            string
		secondaryXfr    bool
		transfers       string
		primaryPerOwner bool // the primary answers a TLSA query per owner
		secondaryPer    bool // so does the secondary
	}{
		// No zone setting: the primary is read owner by owner (the only
		// proof of each owner's zone), the other servers from their copy.
		{"both servers transfer", true, "", true, false},
		{"the secondary refuses", false, "", true, true},
		{"zone_transfers = false", true, "false", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test.", "sub.example.test."}, TTL: 300, SecondaryTransfers: tc.secondaryXfr})
			lab.Nsupdate(t, `zone example.test.
update add _25._tcp.h001.example.test. 3600 IN TLSA 3 0 1 `+strings.Repeat("ab", 32)+`
update add _25._tcp.h002.example.test. 300 IN CNAME _25._tcp.h003.example.test.
update add _danehook._25._tcp.h004.example.test. 300 IN TXT "danehook-claim host=mx2 tlsa=3 1 1 `+strings.Repeat("ab", 32)+`"
update add _danehook._25._tcp.h004.example.test. 300 IN TXT "not a claim"
send
zone sub.example.test.
update add _25._tcp.s001.sub.example.test. 60 IN TLSA 2 1 1 `+strings.Repeat("cd", 32)+`
send
`)
			for _, addr := range []string{lab.Secondary} {
				for _, z := range []string{"example.test.", "sub.example.test."} {
					lab.WaitSerial(t, addr, z, lab.Serial(t, lab.Primary, z), 20*time.Second)
				}
			}
			direct, _, _ := transferEngine(t, lab, hosts, "false", "mx1")
			e, _, dl := transferEngine(t, lab, hosts, tc.transfers, "mx1")
			want, err := direct.observe(t.Context(), observeOpts{})
			if err != nil {
				t.Fatal(err)
			}
			pb, sb := lab.Counters(t, "primary"), lab.Counters(t, "secondary")
			got, err := e.observe(t.Context(), observeOpts{})
			if err != nil {
				t.Fatal(err)
			}
			pa, sa := lab.Counters(t, "primary"), lab.Counters(t, "secondary")
			w, g := observedText(t, want), observedText(t, got)
			if len(w) != len(hosts)-1 || len(g) != len(w) { // h002 is a CNAME to h003: one owner
				t.Fatalf("observed %d and %d owners, want %d", len(w), len(g), len(hosts)-1)
			}
			for i := range w {
				if w[i] != g[i] {
					t.Errorf("owner %d:\n direct   %s\n transfer %s", i, w[i], g[i])
				}
			}
			for _, i := range []int{0, 1, 2, 300} {
				t.Logf("%s", g[i])
			}
			if i := slices.IndexFunc(g, func(l string) bool { return strings.HasPrefix(l, "_25._tcp.h004.") }); i < 0 || !strings.Contains(g[i], "host=mx2") || strings.Contains(g[i], "not a claim") {
				t.Errorf("h004's claim by mx2 is not observed (and only it): %v", g[max(i, 0)])
			}
			if txt := pa.Queries["TXT"] - pb.Queries["TXT"]; tc.primaryPerOwner != (txt >= uint64(len(hosts)-1)) || (!tc.primaryPerOwner && txt > 8) {
				t.Errorf("primary answered %d registry TXT queries for %d owners; want one per owner: %t", txt, len(hosts)-1, tc.primaryPerOwner)
			}
			pq, sq := pa.Queries["TLSA"]-pb.Queries["TLSA"], sa.Queries["TLSA"]-sb.Queries["TLSA"]
			t.Logf("TLSA queries answered: primary %d, secondary %d; AXFR requests: primary %d, secondary %d\n%s",
				pq, sq, pa.Queries["AXFR"]-pb.Queries["AXFR"], sa.Queries["AXFR"]-sb.Queries["AXFR"], dl.text())
			n := uint64(len(hosts) - 1)
			// The probes (one owner per host parent: 2), the CNAME and its
			// target, and nothing else.
			if tc.primaryPerOwner != (pq >= n) || (!tc.primaryPerOwner && pq > 8) {
				t.Errorf("primary answered %d TLSA queries for %d owners; want one per owner: %t", pq, n, tc.primaryPerOwner)
			}
			if tc.secondaryPer != (sq >= n) || (!tc.secondaryPer && sq > 8) {
				t.Errorf("secondary answered %d TLSA queries for %d owners; want one per owner: %t", sq, n, tc.secondaryPer)
			}
			if tc.transfers == "" && tc.secondaryXfr && !strings.Contains(dl.text(), "owners read from the zone transfer") {
				t.Errorf("the debug lines do not say the owners were read from the transfer:\n%s", dl.text())
			}
			if !tc.secondaryXfr && !strings.Contains(dl.text(), "REFUSED") {
				t.Errorf("the debug lines do not say the secondary refused the transfer:\n%s", dl.text())
			}
		})
	}
}

// TestPublishByTransfer: with the provider's zone set, a publish of 300
// owners read by transfer adds
// every record in as few UPDATEs as for direct reads, needs no SOA query
// per owner to place them (FindZone takes the zone from the copy), and a
// rerun plans nothing and sends no UPDATE.
func TestPublishByTransfer(t *testing.T) {
	t.Parallel()
	lab := bindlab.Start(t, bindlab.Options{TTL: 300, SecondaryTransfers: true})
	var hosts []string
	for i := range 300 {
		hosts = append(hosts, fmt.Sprintf("h%03d.example.test", i))
	}
	e, rp, dl := transferEngineZone(t, lab, hosts, "", "", "example.test.")
	before, after := publishAll(t, e, lab, len(hosts))
	if got := after.Requests["UPDATE"] - before.Requests["UPDATE"]; got != 1 {
		t.Errorf("server counted %d UPDATEs, want 1", got)
	}
	if got := after.Queries["SOA"] - before.Queries["SOA"]; got > 10 {
		t.Errorf("primary answered %d SOA queries, want a few per zone, none per owner", got)
	}
	if got := after.Queries["TLSA"] - before.Queries["TLSA"]; got > 4 {
		t.Errorf("primary answered %d TLSA queries, want the probe's only", got)
	}
	t.Logf("first publish: %+v\n%s", rp.Sent(), dl.text())
	for _, o := range []string{"_25._tcp.h000.example.test.", "_25._tcp.h299.example.test."} {
		for _, a := range []string{lab.Primary} {
			if n := tlsaCount(t, a, o); n != 1 {
				t.Errorf("%s serves %d TLSA records at %s, want 1", a, n, o)
			}
		}
	}
	rerunSendsNothing(t, e, lab)
}

// TestObserveByTransferZones: the provider's zones setting names the zones
// of a primary serving several. 260 owners in example.test., 210 in
// sub.example.test. (on the same servers, no delegation in its parent) and
// 80 in other.test.; each listing gives every owner the observation direct
// reads give, and the primary answers a TLSA query only for the owners of
// the zones not listed (the probes aside): both zones and the one below
// listed, the one below only (its parent's owners are placed by their
// direct answers), and a listed zone of none of the owners.
func TestObserveByTransferZones(t *testing.T) {
	t.Parallel()
	var hosts []string
	for i := range 260 {
		hosts = append(hosts, fmt.Sprintf("h%03d.example.test", i))
	}
	for i := range 210 {
		hosts = append(hosts, fmt.Sprintf("s%03d.sub.example.test", i))
	}
	for i := range 80 {
		hosts = append(hosts, fmt.Sprintf("o%03d.other.test", i))
	}
	lab := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test.", "sub.example.test.", "other.test."}, TTL: 300, SecondaryTransfers: true})
	lab.Nsupdate(t, `zone example.test.
update add _25._tcp.h001.example.test. 3600 IN TLSA 3 0 1 `+strings.Repeat("ab", 32)+`
update add _25._tcp.h002.example.test. 300 IN CNAME _25._tcp.h003.example.test.
send
zone sub.example.test.
update add _25._tcp.s001.sub.example.test. 60 IN TLSA 2 1 1 `+strings.Repeat("cd", 32)+`
send
zone other.test.
update add _25._tcp.o001.other.test. 300 IN TLSA 3 1 1 `+strings.Repeat("ef", 32)+`
send
`)
	for _, z := range []string{"example.test.", "sub.example.test.", "other.test."} {
		lab.WaitSerial(t, lab.Secondary, z, lab.Serial(t, lab.Primary, z), 20*time.Second)
	}
	direct, _, _ := transferEngine(t, lab, hosts, "false", "")
	want, err := direct.observe(t.Context(), observeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	w := observedText(t, want)
	for _, tc := range []struct {
		name   string
		zones  string
		direct int // owners the primary is asked for one by one
		// misread: the listing leaves out a zone below a listed one that
		// has no delegation, so that zone's owners are read from their
		// parent's copy (the README's warning): the observations differ.
		misread bool
	}{
		{"every zone listed", `["example.test.", "Sub.Example.Test", "other.test."]`, 0, false},
		{"the zone below and another", `["sub.example.test.", "other.test."]`, 259, false},
		{"only the zone below", `["sub.example.test."]`, 259 + 80, false},
		{"a zone of no owner and other.test", `["unused.test.", "other.test"]`, 259 + 210, false},
		{"the parent without the zone below (negative control)", `["example.test.", "other.test."]`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, dl := transferEngineZone(t, lab, hosts, "", "", tc.zones)
			pb := lab.Counters(t, "primary")
			got, err := e.observe(t.Context(), observeOpts{})
			if err != nil {
				t.Fatal(err)
			}
			pa := lab.Counters(t, "primary")
			g := observedText(t, got)
			if len(g) != len(w) {
				t.Fatalf("observed %d owners, want %d", len(g), len(w))
			}
			differ := 0
			for i := range w {
				if w[i] != g[i] {
					differ++
					if !tc.misread {
						t.Errorf("owner %d:\n direct   %s\n transfer %s", i, w[i], g[i])
					}
				}
			}
			if tc.misread {
				if differ < 210 {
					t.Errorf("%d observations differ from direct reads; want the 210 owners of sub.example.test. (read from example.test.'s copy)", differ)
				}
				return
			}
			pq := pa.Queries["TLSA"] - pb.Queries["TLSA"]
			t.Logf("zones = %s: primary answered %d TLSA queries, %d AXFR\n%s", tc.zones, pq, pa.Queries["AXFR"]-pb.Queries["AXFR"], dl.text())
			if pq < uint64(tc.direct) || pq > uint64(tc.direct)+8 {
				t.Errorf("primary answered %d TLSA queries; want %d (one per owner of an unlisted zone) and a few probes", pq, tc.direct)
			}
		})
	}
}

// TestPublishByTransferZones: with the provider's zones setting, a publish
// of owners in two listed zones and one unlisted adds every record with
// one UPDATE per zone, asks the primary no SOA query per owner, and a
// rerun sends nothing.
func TestPublishByTransferZones(t *testing.T) {
	t.Parallel()
	lab := bindlab.Start(t, bindlab.Options{Zones: []string{"a.test.", "b.test.", "c.test."}, TTL: 300, SecondaryTransfers: true})
	var hosts []string
	for i := range 300 {
		hosts = append(hosts, fmt.Sprintf("h%03d.%c.test", i, 'a'+i%3))
	}
	e, _, dl := transferEngineZone(t, lab, hosts, "", "", `["a.test.", "b.test."]`)
	before, after := publishAll(t, e, lab, len(hosts))
	if got := after.Requests["UPDATE"] - before.Requests["UPDATE"]; got != 3 {
		t.Errorf("server counted %d UPDATEs, want 3 (one per zone)", got)
	}
	if got := after.Queries["TLSA"] - before.Queries["TLSA"]; got < 100 || got > 108 {
		t.Errorf("primary answered %d TLSA queries, want the 100 owners of c.test (unlisted) and the probes only", got)
	}
	t.Logf("%s", dl.text())
	for _, o := range []string{"_25._tcp.h000.a.test.", "_25._tcp.h001.b.test.", "_25._tcp.h299.c.test."} {
		if n := tlsaCount(t, lab.Primary, o); n != 1 {
			t.Errorf("%s serves %d TLSA records at %s, want 1", lab.Primary, n, o)
		}
	}
	rerunSendsNothing(t, e, lab)
}

// publishAll runs e.Publish, checks it added wantAdds records, and returns
// the primary's counters before and after.
func publishAll(t *testing.T, e *Engine, lab *bindlab.Lab, wantAdds int) (before, after bindlab.Counters) {
	t.Helper()
	before = lab.Counters(t, "primary")
	plans, err := e.Publish(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after = lab.Counters(t, "primary")
	adds := 0
	for _, p := range plans {
		adds += len(p.Changes)
	}
	if adds != wantAdds {
		t.Errorf("Publish added %d records, want %d", adds, wantAdds)
	}
	return before, after
}

// TestTransferTwoViews: with BIND views chosen by the key, the signed
// transfer is the view UPDATEs change — the plan comes from it —, and the
// unsigned view (what resolvers see, serial 1000, here holding a record
// the signed view lacks) is what the propagation check observes: the
// transfer's SOA is not the unsigned one, so nothing from it is taken for
// the propagation check.
func TestTransferTwoViews(t *testing.T) {
	t.Parallel()
	var hosts []string
	for i := range 220 {
		hosts = append(hosts, fmt.Sprintf("h%03d.example.test", i))
	}
	foreign := "3 1 1 " + strings.Repeat("ef", 32)
	lab := bindlab.Start(t, bindlab.Options{TTL: 300, UnsignedView: "_25._tcp.h005\tIN TLSA " + foreign})
	e, rp, dl := transferEngine(t, lab, hosts, "", "")
	s, err := e.observe(t.Context(), observeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range s.Owners {
		if ov.Err != nil {
			t.Fatalf("%s: %v", ov.Owner, ov.Err)
		}
		signed := signedTLSA(t, rp, ov.Owner)
		if len(ov.Current) != len(signed) {
			t.Errorf("%s: the plan's RRset %v, the signed view serves %v", ov.Owner, ov.Current, signed)
		}
		var primary propagate.ServerState
		for _, sv := range ov.Obs.Servers {
			if sv.Server.Addr == lab.Primary {
				primary = sv
			}
		}
		wantUnsigned := ov.Owner == "_25._tcp.h005.example.test."
		if got := len(primary.Records) == 1 && primary.Records[0].String() == foreign; got != wantUnsigned || primary.Serial != 1000 {
			t.Errorf("%s: the propagation check saw %v at serial %d at the primary; want the unsigned view's (serial 1000, %s only at h005)", ov.Owner, recordText(primary.Records), primary.Serial, foreign)
		}
	}
	if d := dl.text(); !strings.Contains(d, "another view") {
		t.Errorf("the debug lines do not say the views differ:\n%s", d)
	}
}
