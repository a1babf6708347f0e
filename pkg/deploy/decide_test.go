package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// The decision functions over in-memory snapshots: no servers, every
// state enumerable (issue "The invariant from what is observed").

const (
	tOwner = "_25._tcp.mail.example.test."
	tHost  = "mail.example.test"
	srvA   = "127.0.0.1:53"
	srvB   = "127.0.0.2:53"
)

var tNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// memChain issues a chain for mail.example.test from ca with key k (new
// when nil), notBefore shifted by age.
func memChain(t *testing.T, ca *testCA, k *ecdsa.PrivateKey, age time.Duration) *chain.Chain {
	t.Helper()
	if k == nil {
		k, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	_, certsPEM, _ := ca.issue(t, k)
	leaf := mustLeaf(t, certsPEM)
	// Re-sign with the wanted notBefore so "newest" is deterministic.
	leaf.NotBefore = tNow.Add(-48 * time.Hour).Add(age)
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return &chain.Chain{Key: k, Leaf: leaf, Issuers: []*x509.Certificate{ca.cert}}
}

// memChainNamed is memChain with a leaf whose only name (subjectAltName
// dNSName and subject CN) is name.
func memChainNamed(t *testing.T, ca *testCA, k *ecdsa.PrivateKey, age time.Duration, name string) *chain.Chain {
	t.Helper()
	c := memChain(t, ca, k, age)
	leaf := *c.Leaf
	leaf.DNSNames = []string{name}
	leaf.Subject.CommonName = name
	der, err := x509.CreateCertificate(rand.Reader, &leaf, ca.cert, c.Key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return c
}

func rec311(t *testing.T, c *chain.Chain) tlsa.Record {
	t.Helper()
	r, err := tlsa.FromSPKI(c.Leaf.RawSubjectPublicKeyInfo, tlsa.UsageDANEEE, tlsa.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rec301(t *testing.T, c *chain.Chain) tlsa.Record {
	t.Helper()
	r, err := tlsa.FromCertificate(c.Leaf, tlsa.UsageDANEEE, tlsa.SelectorCert, tlsa.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rec211(t *testing.T, ca *testCA) tlsa.Record {
	t.Helper()
	r, err := tlsa.FromCertificate(ca.cert, tlsa.UsageDANETA, tlsa.SelectorSPKI, tlsa.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// served is one record at the owner: on which servers, first seen how long
// before tNow.
type servedRec struct {
	rec   tlsa.Record
	since time.Duration // first seen by every listed server this long ago
	on    []string      // servers; nil means both
}

// world builds a one-lineage snapshot: records served at TTL ttl, with
// the TTL history given (ttl seconds → last seen ago).
func world(t *testing.T, installed *chain.Chain, ttl uint32, recs []servedRec, history map[uint32]time.Duration) (*snapshot, *lineageView) {
	t.Helper()
	l := &config.Lineage{Name: "mail", Hosts: []string{tHost}, Ports: []int{25}, Usages: []string{"3 1 1"}, TTL: int(ttl), Provider: "lab", ChainFile: "/nonexistent"}
	lv := &lineageView{L: l, State: &LineageState{}, Refs: []ownerRef{{Owner: tOwner, Host: tHost}}, Installed: installed}
	seen := &propagate.Seen{}
	obs := &propagate.Observation{Zone: "example.test.", Owner: tOwner, Primary: srvA, NegativeTTL: 1, ConfiguredTTL: ttl}
	by := map[string]*propagate.ServerState{}
	for _, a := range []string{srvA, srvB} {
		by[a] = &propagate.ServerState{Server: propagate.Server{Name: "ns.", Addr: a}, Reachable: true, Serial: 1, TTL: ttl}
	}
	for _, r := range recs {
		on := r.on
		if on == nil {
			on = []string{srvA, srvB}
		}
		for _, a := range on {
			by[a].Records = append(by[a].Records, r.rec)
		}
	}
	obs.Servers = []propagate.ServerState{*by[srvA], *by[srvB]}
	// First sightings: replay each record's sighting time.
	for _, r := range recs {
		on := r.on
		if on == nil {
			on = []string{srvA, srvB}
		}
		if seen.Owners == nil {
			seen.Owners = map[string]map[string]map[string]time.Time{}
		}
		if seen.Owners[tOwner] == nil {
			seen.Owners[tOwner] = map[string]map[string]time.Time{}
		}
		k := strings.ToLower(r.rec.String())
		if seen.Owners[tOwner][k] == nil {
			seen.Owners[tOwner][k] = map[string]time.Time{}
		}
		for _, a := range on {
			seen.Owners[tOwner][k][a] = tNow.Add(-r.since)
		}
	}
	for ttl, ago := range history {
		if seen.TTLs == nil {
			seen.TTLs = map[string]map[string]time.Time{tOwner: {}}
		}
		seen.TTLs[tOwner][itoa(int(ttl))] = tNow.Add(-ago)
	}
	var current []dnsupdate.RR
	for _, r := range by[srvA].Records {
		current = append(current, dnsupdate.RR{Owner: tOwner, TTL: ttl, Record: r})
	}
	ov := &ownerView{Owner: tOwner, Host: tHost, Zone: "example.test.", Provider: "lab", Lineages: []string{"mail"}, TTL: ttl, Obs: obs, Current: current}
	s := &snapshot{Now: tNow, DNS: &DNSState{Owned: map[string][]string{}, Seen: seen}, Lineages: []*lineageView{lv}, Owners: []*ownerView{ov}}
	return s, lv
}

func TestDecideSwitch(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cur := memChain(t, ca, k, 0)
	sameKey := memChain(t, ca, k, time.Hour) // a same-key renewal
	newKey := memChain(t, ca, nil, time.Hour)
	withTA := func(c *chain.Chain) *chain.Chain { cp := *c; cp.TA = ca.cert; return &cp }
	otherName := memChainNamed(t, ca, nil, time.Hour, "smtp.example.test")
	stale := "3 1 1 " + strings.Repeat("ab", 32)
	staleRec, _ := tlsa.Parse(stale)

	for _, tc := range []struct {
		name    string
		next    *chain.Chain
		ttl     uint32
		recs    []servedRec
		history map[uint32]time.Duration
		usages  []string
		safe    bool
		why     string // in Reason or Blocking
	}{
		{name: "same key, its 3 1 1 aged", next: sameKey, ttl: 60, recs: []servedRec{{rec: rec311(t, cur), since: 3 * time.Minute}}, safe: true},
		{name: "same key, its 3 1 1 just published (adoption: no shortcut)", next: sameKey, ttl: 60,
			recs: []servedRec{{rec: rec301(t, cur), since: time.Hour}, {rec: rec311(t, cur), since: 10 * time.Second}}, why: "not aged until"},
		{name: "adoption: only a hand-made 3 0 1 of the old certificate", next: sameKey, ttl: 60,
			recs: []servedRec{{rec: rec301(t, cur), since: time.Hour}}, why: "does not serve it"},
		{name: "adoption: 2 1 1 of another CA and a stale 3 1 1", next: newKey, ttl: 60,
			recs: []servedRec{{rec: rec211(t, other), since: time.Hour}, {rec: staleRec, since: time.Hour}}, why: "does not serve it"},
		{name: "new key aged on both servers", next: newKey, ttl: 60,
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, newKey), since: 121 * time.Second}}, safe: true},
		{name: "new key on the primary only (lagging secondary)", next: newKey, ttl: 60,
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, newKey), since: time.Hour, on: []string{srvA}}}, why: "does not serve it"},
		{name: "TTL lowered by the change: waits 2 x the old TTL", next: newKey, ttl: 300, history: map[uint32]time.Duration{3600: 11 * time.Minute},
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, newKey), since: 11 * time.Minute}}, why: "2 x 3600s"},
		{name: "TTL lowered long ago: the old TTL no longer counts", next: newKey, ttl: 300, history: map[uint32]time.Duration{3600: 4 * time.Hour},
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, newKey), since: 11 * time.Minute}}, safe: true},
		{name: "DANE-TA aged and the TA in the chain", next: withTA(newKey), ttl: 60, usages: []string{"2 1 1"},
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}}, safe: true},
		{name: "DANE-TA aged but the TA not in the chain: the issuer is, so it matches", next: newKey, ttl: 60, usages: []string{"2 1 1"},
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}}, safe: true},
		{name: "DANE-TA of another CA", next: newKey, ttl: 60, usages: []string{"2 1 1"},
			recs: []servedRec{{rec: rec211(t, other), since: time.Hour}}, why: "does not serve it"},
		{name: "no record at all: a first issuance waits", next: newKey, ttl: 60, why: "does not serve it"},
		// RFC 7672 §3.2.3: a DANE-TA match needs the MX host among the
		// leaf's names; only 2 1 1 usable and the leaf names another host.
		{name: "DANE-TA aged but the leaf lacks the MX host", next: withTA(otherName), ttl: 60, usages: []string{"2 1 1"},
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}}, why: "does not apply to host mail.example.test"},
		{name: "DANE-TA aged, the leaf lacks the host, its 3 1 1 aged too", next: otherName, ttl: 60, usages: []string{"3 1 1", "2 1 1"},
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}, {rec: rec311(t, otherName), since: time.Hour}}, safe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, cur, tc.ttl, tc.recs, tc.history)
			if tc.usages != nil {
				lv.L.Usages = tc.usages
			}
			want := map[string][]tlsa.Record{tOwner: {rec311(t, tc.next)}}
			d := decideSwitch(s, lv, tc.next, want)
			if d.Safe != tc.safe {
				t.Fatalf("safe = %v, want %v: %s %v", d.Safe, tc.safe, d.Reason, d.Blocking)
			}
			if text := d.Reason + " " + strings.Join(d.Blocking, "; "); tc.why != "" && !strings.Contains(text, tc.why) {
				t.Errorf("decision %q, want it to say %q", text, tc.why)
			}
			if strings.Contains(tc.name, "lacks the MX host") && !d.Safe && !strings.Contains(d.Reason, tHost) {
				t.Errorf("reason %q does not name the host %s", d.Reason, tHost)
			}
		})
	}
}

func TestDecideRemovals(t *testing.T) {
	ca := newCA(t)
	old := memChain(t, ca, nil, 0)
	cur := memChain(t, ca, nil, time.Hour)
	pending := memChain(t, ca, nil, 2*time.Hour)
	foreign, _ := tlsa.Parse("3 0 1 " + strings.Repeat("cd", 32))
	for _, tc := range []struct {
		name      string
		installed *chain.Chain
		presented *chain.Chain // what the endpoint presented; nil: not observed
		pending   *chain.Chain
		verified  string // why not verified ("" verified)
		owned     []*chain.Chain
		want      []*chain.Chain // wanted records
		remove    []*chain.Chain
		hold      []*chain.Chain
	}{
		{name: "old key's record, Postfix presents the new chain", installed: cur, presented: cur, owned: []*chain.Chain{old, cur}, want: []*chain.Chain{cur}, remove: []*chain.Chain{old}},
		{name: "smtpd still presents the old chain after the reload", installed: cur, presented: old, owned: []*chain.Chain{old, cur}, want: []*chain.Chain{cur}, hold: []*chain.Chain{old}},
		{name: "chain file missing, Postfix presents the old chain", installed: nil, presented: old, owned: []*chain.Chain{old, cur}, want: []*chain.Chain{cur}, hold: []*chain.Chain{old}},
		{name: "pending chain's record kept", installed: cur, presented: cur, pending: pending, owned: []*chain.Chain{old, cur, pending}, want: []*chain.Chain{cur}, remove: []*chain.Chain{old}, hold: []*chain.Chain{pending}},
		{name: "not verified in this run", installed: cur, presented: cur, verified: "endpoint unreachable", owned: []*chain.Chain{old, cur}, want: []*chain.Chain{cur}, hold: []*chain.Chain{old}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []servedRec
			for _, c := range tc.owned {
				recs = append(recs, servedRec{rec: rec311(t, c), since: time.Hour})
			}
			recs = append(recs, servedRec{rec: foreign, since: time.Hour})
			s, lv := world(t, tc.installed, 60, recs, nil)
			lv.Pending = tc.pending
			if tc.presented != nil {
				lv.Presented = map[string][]*x509.Certificate{"127.0.0.1:25": tc.presented.Served()}
			}
			for _, c := range tc.owned {
				s.DNS.own(tOwner, rec311(t, c), "lab")
			}
			var want []tlsa.Record
			for _, c := range tc.want {
				want = append(want, rec311(t, c))
			}
			remove, held := decideRemovals(s, s.Owners[0], want, nil, map[string]string{"mail": tc.verified}, nil)
			if got, w := len(remove), len(tc.remove); got != w {
				t.Errorf("removes %v, want %d records", remove, w)
			}
			for _, c := range tc.remove {
				if !containsRR(remove, rec311(t, c)) {
					t.Errorf("does not remove %s", rec311(t, c))
				}
			}
			for _, c := range tc.hold {
				found := false
				for _, h := range held {
					found = found || h.RR.Record.Equal(rec311(t, c))
				}
				if !found {
					t.Errorf("does not hold %s (held %v)", rec311(t, c), held)
				}
			}
			if containsRR(remove, foreign) {
				t.Error("removes a record danehook does not own")
			}
			if u := unmatched(s, s.Owners[0]); len(u) != 1 || !u[0].Equal(foreign) {
				t.Errorf("unmatched = %v, want the foreign 3 0 1 only", u)
			}
		})
	}
}

func containsRR(rrs []dnsupdate.RR, r tlsa.Record) bool {
	for _, rr := range rrs {
		if rr.Record.Equal(r) {
			return true
		}
	}
	return false
}

func TestCandidate(t *testing.T) {
	ca := newCA(t)
	installed := memChain(t, ca, nil, 0)
	older := memChain(t, ca, nil, -time.Hour)
	source := memChain(t, ca, nil, time.Hour)
	renewal := memChain(t, ca, nil, 2*time.Hour)
	for _, tc := range []struct {
		name                     string
		renewal, source, pending *chain.Chain
		want                     *chain.Chain
	}{
		{name: "nothing newer", want: nil},
		{name: "a failed deploy hook: the client's files are newer", source: source, want: source},
		{name: "the hook's renewal wins over an older pending chain", renewal: renewal, pending: source, want: renewal},
		{name: "an older source is not a switch back", source: older, want: nil},
		{name: "the installed chain is the source", source: installed, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lv := &lineageView{Installed: installed, Renewal: tc.renewal, Source: tc.source, Pending: tc.pending}
			got := candidate(lv, installed)
			if (got == nil) != (tc.want == nil) || (got != nil && !sameChain(got.Served(), tc.want.Served())) {
				t.Errorf("candidate = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRetiredOwner: a host removed from the configuration (or renamed)
// keeps its owner in the state. Its owned records are withdrawn at once
// when nothing else remains there, a switch of its lineage waits until no
// resolver can hold them, and foreign records that would be left without a
// match keep danehook's records in place (issue 9 item 8).
func TestRetiredOwner(t *testing.T) {
	ca := newCA(t)
	cur := memChain(t, ca, nil, 0)
	next := memChain(t, ca, nil, time.Hour)
	const old = "_25._tcp.mx2.example.test."
	retired := func(recs []tlsa.Record, ttlSeenAgo time.Duration) (*snapshot, *lineageView) {
		s, lv := world(t, cur, 60, []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, next), since: time.Hour}}, nil)
		obs := &propagate.Observation{Zone: "example.test.", Owner: old, Primary: srvA, NegativeTTL: 1}
		var current []dnsupdate.RR
		for _, a := range []string{srvA, srvB} {
			obs.Servers = append(obs.Servers, propagate.ServerState{Server: propagate.Server{Name: "ns.", Addr: a}, Reachable: true, Serial: 1, TTL: 60, Records: recs})
		}
		for _, r := range recs {
			current = append(current, dnsupdate.RR{Owner: old, TTL: 60, Record: r})
			s.DNS.Seen.Owners[old] = map[string]map[string]time.Time{strings.ToLower(r.String()): {srvA: tNow.Add(-time.Hour), srvB: tNow.Add(-time.Hour)}}
		}
		if s.DNS.Seen.TTLs == nil {
			s.DNS.Seen.TTLs = map[string]map[string]time.Time{}
		}
		s.DNS.Seen.TTLs[old] = map[string]time.Time{"60": tNow.Add(-ttlSeenAgo)}
		s.Owners = append(s.Owners, &ownerView{Owner: old, Host: "mx2.example.test", Zone: "example.test.", Provider: "lab", TTL: 60, Obs: obs, Current: current, Former: []string{"mail"}})
		s.DNS.own(old, rec311(t, cur), "lab")
		return s, lv
	}
	want := map[string][]tlsa.Record{tOwner: {rec311(t, next)}}

	// Still served at the old owner: the switch waits.
	s, lv := retired([]tlsa.Record{rec311(t, cur)}, 0)
	if d := decideSwitch(s, lv, next, want); d.Safe || !strings.Contains(strings.Join(d.Blocking, ";"), "no longer configured") {
		t.Errorf("switch with the old owner still served: %+v", d)
	}
	remove, held := decideRemovals(s, s.Owners[1], nil, nil, map[string]string{}, nil)
	if len(remove) != 1 || len(held) != 0 {
		t.Errorf("retired owner with only danehook's record: remove %v, held %v; want it removed", remove, held)
	}
	// Withdrawn, but a resolver may still hold it: still waits.
	s, lv = retired(nil, 30*time.Second)
	if d := decideSwitch(s, lv, next, want); d.Safe {
		t.Errorf("switch while the withdrawn RRset may be cached: %+v", d)
	}
	// Withdrawn 2 x TTL ago: the switch goes.
	s, lv = retired(nil, 121*time.Second)
	if d := decideSwitch(s, lv, next, want); !d.Safe {
		t.Errorf("switch after the old owner's RRset expired: %+v", d)
	}
	// A foreign record that matches nothing would be left alone: hold.
	foreign, _ := tlsa.Parse("3 1 1 " + strings.Repeat("ab", 32))
	s, _ = retired([]tlsa.Record{rec311(t, cur), foreign}, 0)
	if remove, held := decideRemovals(s, s.Owners[1], nil, nil, map[string]string{}, nil); len(remove) != 0 || len(held) != 1 {
		t.Errorf("retired owner with a foreign record left unmatched: remove %v, held %v; want danehook's record held", remove, held)
	}
}

// TestDecideRemovalsUsageDropped: a record the usages no longer give (3 1 1
// dropped for 2 1 1) goes while the key it names is still served, once
// every chain it matches is covered by an aged record that stays — for
// every host whose owner it is (DANE-TA needs the name) — and is held
// until then.
func TestDecideRemovalsUsageDropped(t *testing.T) {
	ca := newCA(t)
	cur := taOf(memChain(t, ca, nil, time.Hour))
	for _, tc := range []struct {
		name   string
		ta     servedRec
		alias  string // an alias whose host the leaf does not name
		remove bool
	}{
		{name: "2 1 1 aged at both servers: the 3 1 1 goes", ta: servedRec{rec: rec211(t, ca), since: time.Hour}, remove: true},
		{name: "2 1 1 not aged yet: the 3 1 1 stays", ta: servedRec{rec: rec211(t, ca), since: 10 * time.Second}},
		{name: "2 1 1 aged on the primary only: the 3 1 1 stays", ta: servedRec{rec: rec211(t, ca), since: time.Hour, on: []string{srvA}}},
		{name: "2 1 1 aged, but an alias's host is not among the leaf's names: the 3 1 1 stays", ta: servedRec{rec: rec211(t, ca), since: time.Hour}, alias: "_25._tcp.other.example.test."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, cur, 60, []servedRec{{rec: rec311(t, cur), since: time.Hour}, tc.ta}, nil)
			s.Now = time.Now()
			// Sightings relative to the real clock (the fixture CA's validity).
			for k, by := range s.DNS.Seen.Owners[tOwner] {
				for a, at := range by {
					s.DNS.Seen.Owners[tOwner][k][a] = s.Now.Add(at.Sub(tNow))
				}
			}
			lv.L.Usages, lv.L.TA = []string{"2 1 1"}, chain.TAIssuer
			lv.Presented = map[string][]*x509.Certificate{"127.0.0.1:25": cur.Served()}
			if tc.alias != "" {
				s.Owners[0].Aliases = []string{tc.alias}
			}
			s.DNS.own(tOwner, rec311(t, cur), "lab")
			s.DNS.own(tOwner, rec211(t, ca), "lab")
			remove, held := decideRemovals(s, s.Owners[0], []tlsa.Record{rec211(t, ca)}, nil, map[string]string{"mail": ""}, nil)
			if got := containsRR(remove, rec311(t, cur)); got != tc.remove {
				t.Fatalf("3 1 1 removed = %v, want %v (remove %v, held %v)", got, tc.remove, remove, held)
			}
			if containsRR(remove, rec211(t, ca)) {
				t.Fatal("removes the wanted 2 1 1")
			}
			if !tc.remove && len(held) != 1 {
				t.Errorf("held %v, want the 3 1 1 with its reason", held)
			}
		})
	}
}
