package dnsupdate

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	"github.com/miekg/dns"
)

// rec returns a 3 1 1 record whose 32 data bytes are all b.
func rec(b byte) tlsa.Record {
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{b}, 32)}
}

func labProvider(t testing.TB, l *bindlab.Lab) *RFC2136 {
	t.Helper()
	k, err := LoadTSIGKeyFile(l.KeyFile)
	if err != nil {
		t.Fatalf("LoadTSIGKeyFile: %v", err)
	}
	return &RFC2136{Server: l.Primary, Key: k, Timeout: 5 * time.Second}
}

// served returns the sorted presentation forms of the TLSA records at owner.
func served(t *testing.T, p *RFC2136, owner string) []string {
	t.Helper()
	rrs, err := p.Records(t.Context(), owner)
	if err != nil {
		t.Fatalf("Records(%q): %v", owner, err)
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Record.String())
	}
	sort.Strings(out)
	return out
}

func want(recs ...tlsa.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

func assertServed(t *testing.T, p *RFC2136, owner string, recs ...tlsa.Record) {
	t.Helper()
	got, w := served(t, p, owner), want(recs...)
	if strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Fatalf("records at %s:\ngot  %q\nwant %q", owner, got, w)
	}
}

func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error contains a secret: %v", err)
		}
	}
}

const owner = "_25._tcp.mail.example.test."

func TestApplyAddReplaceRemoveKeepsOthers(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	p := labProvider(t, l)
	ctx := t.Context()

	// Records owned by others: one added with nsupdate, one with the libdns
	// rfc2136 provider (as an ACME client or another MX host would).
	other := rec(0xf0)
	l.Nsupdate(t, "update add "+owner+" 300 IN TLSA "+other.String())
	ta := tlsa.Record{Usage: 2, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{0xee}, 32)}
	lp := &rfc2136.Provider{KeyName: l.KeyName, KeyAlg: l.KeyAlgorithm, Key: l.KeySecret(), Server: l.Primary}
	if _, err := lp.AppendRecords(ctx, "example.test.", []libdns.Record{libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", TTL: 300 * time.Second, Data: ta.String()}}); err != nil {
		t.Fatalf("libdns AppendRecords: %v", err)
	}
	assertServed(t, p, owner, other, ta)

	a, b := rec(0xa1), rec(0xb2)
	steps := []struct {
		name    string
		changes []Change
		want    []tlsa.Record
	}{
		{"add", []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: a}}}, []tlsa.Record{other, ta, a}},
		{"replace", []Change{
			{Op: Keep, RR: RR{Owner: owner, TTL: 300, Record: other}},
			{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: b}},
			{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: a}},
		}, []tlsa.Record{other, ta, b}},
		{"remove", []Change{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: b}}}, []tlsa.Record{other, ta}},
	}
	for _, st := range steps {
		serial := l.Serial(t, l.Primary, "example.test.")
		before := p.Sent().Updates
		if err := p.Apply(ctx, st.changes); err != nil {
			t.Fatalf("%s: Apply: %v", st.name, err)
		}
		if got := p.Sent().Updates - before; got != 1 {
			t.Fatalf("%s: got %d UPDATE messages, want 1", st.name, got)
		}
		if got := l.Serial(t, l.Primary, "example.test."); got != serial+1 {
			t.Fatalf("%s: serial %d -> %d, want one increment (one atomic UPDATE)", st.name, serial, got)
		}
		assertServed(t, p, owner, st.want...)
	}
	// The secondary follows by NOTIFY + IXFR.
	l.WaitSerial(t, l.Secondary, "example.test.", l.Serial(t, l.Primary, "example.test."), 5*time.Second)
	sec := &RFC2136{Server: l.Secondary, Key: p.Key}
	assertServed(t, sec, owner, other, ta)
}

func TestDiffAppliedTwiceSendsNothing(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test.", "other.test."}})
	p := labProvider(t, l)
	ctx := t.Context()
	other := rec(0x0f)
	l.Nsupdate(t, "update add "+owner+" 300 IN TLSA "+other.String())
	owners := []string{owner, "_25._tcp.mx.other.test.", "_465._tcp.mail.example.test."}
	old := rec(0x01)
	for _, o := range owners[:2] {
		l.Nsupdate(t, "zone "+zoneOf(o)+"\nupdate add "+o+" 300 IN TLSA "+old.String())
	}
	desired := []tlsa.Record{rec(0x02), rec(0x03)}
	owned := []tlsa.Record{old}

	run := func() Plan {
		var plan Plan
		for _, o := range owners {
			cur, err := p.Records(ctx, o)
			if err != nil {
				t.Fatalf("Records(%q): %v", o, err)
			}
			plan = append(plan, Diff(o, 60, cur, desired, owned)...)
		}
		if err := p.Apply(ctx, plan); err != nil {
			t.Fatalf("Apply: %v\n%s", err, plan)
		}
		return plan
	}
	before := p.Sent().Updates
	first := run()
	if got := p.Sent().Updates - before; got != 2 {
		t.Fatalf("first run: got %d UPDATEs, want 2 (one per zone)\n%s", got, first)
	}
	before = p.Sent().Updates
	second := run()
	if !second.Empty() {
		t.Fatalf("second plan not empty:\n%s", second)
	}
	if got := p.Sent().Updates - before; got != 0 {
		t.Fatalf("second run: got %d UPDATEs, want 0", got)
	}
	assertServed(t, p, owner, other, rec(0x02), rec(0x03))
	assertServed(t, p, "_25._tcp.mx.other.test.", rec(0x02), rec(0x03))
}

func zoneOf(o string) string {
	if strings.HasSuffix(o, "other.test.") {
		return "other.test."
	}
	return "example.test."
}

func TestEnclosingZone(t *testing.T) {
	zones := []string{"example.test", "Sub.Example.Test.", "ample.test.", "", "."}
	for _, tc := range []struct{ owner, want string }{
		{"_25._tcp.mx.example.test.", "example.test."},
		{"_25._tcp.MX.sub.example.test", "sub.example.test."},
		{"sub.example.test.", "sub.example.test."},
		{"example.test", "example.test."},
		{"_25._tcp.mx.ample.test.", "ample.test."},
		{"_25._tcp.mx.xample.test.", ""}, // label boundaries count
		{"_25._tcp.mx.example.net.", ""},
		{`_25._tcp.mx\.example.test.`, ""}, // an escaped dot is no label boundary
	} {
		if got := EnclosingZone(zones, tc.owner); got != tc.want {
			t.Errorf("EnclosingZone(%q) = %q, want %q", tc.owner, got, tc.want)
		}
	}
	if got := EnclosingZone(nil, "mx.example.test."); got != "" {
		t.Errorf("EnclosingZone(nil) = %q, want \"\"", got)
	}
}

func TestFindZone(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test.", "other.test.", "sub.example.test."}})
	// The CNAME trap: an owner in example.test. aliased into other.test.
	l.Nsupdate(t, "update add _25._tcp.x.example.test. 300 IN CNAME _25._tcp.mail.other.test.")
	l.Nsupdate(t, "zone other.test.\nupdate add _25._tcp.mail.other.test. 300 IN TLSA "+rec(0x11).String())
	p := labProvider(t, l)
	ctx := t.Context()
	tests := []struct{ owner, zone string }{
		{"_25._tcp.x.example.test.", "example.test."},
		{"_25._tcp.x.example.test", "example.test."},
		{"_25._tcp.mail.other.test.", "other.test."},
		{"_25._tcp.deep.below.mail.example.test.", "example.test."},
		{"_25._tcp.MX.Sub.Example.Test.", "sub.example.test."},
		{"example.test.", "example.test."},
	}
	for _, tc := range tests {
		got, err := p.FindZone(ctx, tc.owner)
		if err != nil || got != tc.zone {
			t.Errorf("FindZone(%q): got %q, %v; want %q", tc.owner, got, err, tc.zone)
		}
	}
	// Cached: no query the second time.
	q := p.Sent().Queries
	if _, err := p.FindZone(ctx, "_25._tcp.x.example.test."); err != nil || p.Sent().Queries != q {
		t.Errorf("cached FindZone: got %v and %d new queries, want none", err, p.Sent().Queries-q)
	}
	// Not served by this server.
	_, err := p.FindZone(ctx, "_25._tcp.mail.example.org.")
	if !errors.Is(err, ErrNotAuth) || !strings.Contains(err.Error(), "_25._tcp.mail.example.org.") {
		t.Errorf("FindZone outside the server's zones: got %v, want ErrNotAuth naming the owner", err)
	}
	// Explicit zone: no query; owners outside it are refused locally.
	pz := labProvider(t, l)
	pz.Zone = "example.test"
	if z, err := pz.FindZone(ctx, "_25._tcp.x.example.test."); err != nil || z != "example.test." || pz.Sent().Queries != 0 {
		t.Errorf("explicit zone: got %q, %v, %d queries; want example.test. and none", z, err, pz.Sent().Queries)
	}
	if _, err := pz.FindZone(ctx, "_25._tcp.mail.other.test."); !errors.Is(err, ErrNotAuth) || !strings.Contains(err.Error(), "not in the configured zone") {
		t.Errorf("explicit zone, owner outside: got %v, want ErrNotAuth", err)
	}
	// Zones: an owner below a listed zone is placed in the longest one
	// without a query (whatever the server says: the operator's word, as
	// Zone's); the others by zone discovery, which queries.
	pzs := labProvider(t, l)
	pzs.Zones = []string{"Example.Test", "sub.example.test.", "nothing-here.test."}
	for _, tc := range []struct {
		owner, zone string
		query       bool
	}{
		{"_25._tcp.y.example.test.", "example.test.", false},
		{"_25._tcp.mx.sub.example.test", "sub.example.test.", false},
		{"_25._tcp.mail.other.test.", "other.test.", true},
	} {
		q := pzs.Sent().Queries
		z, err := pzs.FindZone(ctx, tc.owner)
		if err != nil || z != tc.zone || (pzs.Sent().Queries > q) != tc.query {
			t.Errorf("zones: FindZone(%q) = %q, %v with %d queries; want %q, queries %t", tc.owner, z, err, pzs.Sent().Queries-q, tc.zone, tc.query)
		}
		q = pzs.Sent().Queries
		z, rrs, err := pzs.ZoneRecords(ctx, tc.owner)
		if err != nil || z != tc.zone || pzs.Sent().Queries-q != 1 {
			t.Errorf("zones: ZoneRecords(%q) = %q, %v, %v with %d queries; want %q with one TLSA query", tc.owner, z, rrs, err, pzs.Sent().Queries-q, tc.zone)
		}
	}
	// A zones list that does not match the server: the direct read says
	// so, naming the zone the server answers from and the list.
	for _, tc := range []struct {
		zones        []string
		owner, wants string
	}{
		// The zone below was left out: an UPDATE to the parent would land
		// below the cut, unseen.
		{[]string{"example.test."}, "_25._tcp.mx.sub.example.test.", `from zone "sub.example.test.", not from the listed zone "example.test."`},
		// A listed name that is no zone: the answer comes from above it.
		{[]string{"child.example.test"}, "_25._tcp.mx.child.example.test.", `from zone "example.test.", not from the listed zone "child.example.test."`},
		// A zone this server does not serve.
		{[]string{"nothing-here.test."}, "_25._tcp.mx.nothing-here.test.", "not authoritative"},
	} {
		pl := labProvider(t, l)
		pl.Zones = tc.zones
		_, _, err := pl.ZoneRecords(ctx, tc.owner)
		var ue *UpdateError
		if !errors.Is(err, ErrNotAuth) || !strings.Contains(err.Error(), tc.wants) || !errors.As(err, &ue) || !strings.Contains(ue.Hint(), "zones list") {
			t.Errorf("zones %q, ZoneRecords(%s) = %v (hint %q); want ErrNotAuth saying %q with a hint on the zones list", tc.zones, tc.owner, err, hintOf(err), tc.wants)
		}
	}
	// The CNAME owner itself cannot hold TLSA records: Records says so.
	_, err = p.Records(ctx, "_25._tcp.x.example.test.")
	var ae *AliasError
	if !errors.Is(err, ErrNotAuth) || !strings.Contains(err.Error(), "CNAME") || !errors.As(err, &ae) || ae.Target != "_25._tcp.mail.other.test." {
		t.Errorf("Records at a CNAME: got %v, want ErrNotAuth wrapping an AliasError to _25._tcp.mail.other.test.", err)
	}
	// NXDOMAIN and NODATA read as empty.
	for _, o := range []string{"_25._tcp.nothing.example.test.", "mail.example.test."} {
		if rrs, err := p.Records(ctx, o); err != nil || rrs == nil || len(rrs) != 0 {
			t.Errorf("Records(%q): got %v, %v; want an empty slice", o, rrs, err)
		}
	}
}

// TestRecordsAtDanglingCNAME: a TLSA owner that is a CNAME to a name of
// the same zone that does not exist yet (the shared target before any host
// published there) is answered NXDOMAIN with the CNAME in the answer (RFC
// 6604 §2.1). Records must still report the alias, not "no records":
// otherwise the first run adds TLSA beside the CNAME, which the server
// refuses (YXRRSET), and writes its ownership claims at the alias.
func TestRecordsAtDanglingCNAME(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	const alias, target = "_25._tcp.mx1.example.test.", "_dane.example.test."
	l.Nsupdate(t, "update add "+alias+" 300 IN CNAME "+target)
	p := labProvider(t, l)
	_, err := p.Records(t.Context(), alias)
	var ae *AliasError
	if !errors.As(err, &ae) || ae.Target != target {
		t.Fatalf("Records at a CNAME to a name that does not exist: got %v, want an AliasError to %s", err, target)
	}
	// The target itself is simply empty.
	if rrs, err := p.Records(t.Context(), target); err != nil || rrs == nil || len(rrs) != 0 {
		t.Errorf("Records(%q): got %v, %v; want an empty slice", target, rrs, err)
	}
}

func TestErrorsFromBIND(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{ExtraKeys: []bindlab.ExtraKey{{
		Name:   "narrow",
		Grants: []string{`grant "narrow." name _25._tcp.mail.example.test. TLSA;`},
	}}})
	good := labProvider(t, l)
	narrow, err := LoadTSIGKeyFile(l.Keys["narrow."].File)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := base64Of("this is not the secret of the key")
	add := func(o string) []Change { return []Change{{Op: Add, RR: RR{Owner: o, TTL: 60, Record: rec(0x42)}}} }
	tests := []struct {
		name     string
		p        *RFC2136
		owner    string
		class    error
		tsigErr  uint16
		contains []string
	}{
		{"wrong secret", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: l.KeyName, Algorithm: "hmac-sha256", Secret: wrongSecret}},
			owner, ErrTSIG, dns.RcodeBadSig, []string{"NOTAUTH(BADSIG)", "wrong secret or algorithm", l.KeyName, l.Primary, `"example.test."`}},
		{"wrong algorithm", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: l.KeyName, Algorithm: "hmac-sha512", Secret: l.KeySecret()}},
			owner, ErrTSIG, 0, []string{"NOTAUTH(BAD", l.KeyName}},
		{"unknown key", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: "nosuchkey.", Algorithm: "hmac-sha256", Secret: l.KeySecret()}},
			owner, ErrTSIG, dns.RcodeBadKey, []string{"NOTAUTH(BADKEY)", `"nosuchkey."`, "check the key name and algorithm in named.conf"}},
		{"refused by update-policy", &RFC2136{Server: l.Primary, Key: narrow},
			"_25._tcp.other.example.test.", ErrRefused, 0, []string{"REFUSED", `"_25._tcp.other.example.test."`,
				`update-policy { grant "narrow." name _25._tcp.other.example.test. TLSA; };`}},
		{"not authoritative", &RFC2136{Server: l.Primary, Key: good.Key, Zone: "nothere.test."},
			"_25._tcp.mail.nothere.test.", ErrNotAuth, 0, []string{"NOTAUTH", `"nothere.test."`, "zone setting"}},
		{"unsigned", &RFC2136{Server: l.Primary},
			owner, ErrRefused, 0, []string{"REFUSED", "TSIG key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Zone = map[bool]string{true: tc.p.Zone, false: "example.test."}[tc.p.Zone != ""]
			serial := l.Serial(t, l.Primary, "example.test.")
			err := tc.p.Apply(t.Context(), add(tc.owner))
			if !errors.Is(err, tc.class) {
				t.Fatalf("got %v, want class %v", err, tc.class)
			}
			var ue *UpdateError
			if !errors.As(err, &ue) {
				t.Fatalf("got %T, want *UpdateError", err)
			}
			if tc.tsigErr != 0 && ue.TSIGError != tc.tsigErr {
				t.Fatalf("TSIG error: got %s, want %s", dns.RcodeToString[int(ue.TSIGError)], dns.RcodeToString[int(tc.tsigErr)])
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			assertNoSecret(t, err, l.KeySecret(), l.Keys["narrow."].Secret(), wrongSecret)
			if got := l.Serial(t, l.Primary, "example.test."); got != serial {
				t.Fatalf("serial changed %d -> %d after a failed update", serial, got)
			}
			t.Logf("message: %v", err)
		})
	}
	// The narrow key may change the owner it is granted.
	n := &RFC2136{Server: l.Primary, Key: narrow}
	if err := n.Apply(t.Context(), add(owner)); err != nil {
		t.Fatalf("granted update with the narrow key: %v", err)
	}
	// Reads signed with a wrong secret fail as TSIG errors too.
	bad := &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: l.KeyName, Algorithm: "hmac-sha256", Secret: wrongSecret}}
	if _, err := bad.Records(t.Context(), owner); !errors.Is(err, ErrTSIG) {
		t.Fatalf("Records with a wrong secret: got %v, want ErrTSIG", err)
	}
}

func base64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestBadTimeFromBIND signs with a clock one hour ahead: the real named
// answers NOTAUTH(BADTIME) with its own time.
func TestBadTimeFromBIND(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	p := labProvider(t, l)
	p.now = func() time.Time { return time.Now().Add(time.Hour) }
	err := p.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}})
	var ue *UpdateError
	if !errors.Is(err, ErrTSIG) || !errors.As(err, &ue) || ue.TSIGError != dns.RcodeBadTime {
		t.Fatalf("got %v, want ErrTSIG with BADTIME", err)
	}
	if s := ue.Skew(); s < 59*time.Minute || s > 61*time.Minute {
		t.Fatalf("skew: got %v, want about 1h", s)
	}
	if msg := err.Error(); !strings.Contains(msg, "3599 s") && !strings.Contains(msg, "3600 s") && !strings.Contains(msg, "3601 s") {
		t.Errorf("error %q does not name the skew, 3600 ± 1 s (the server's clock has 1 s resolution)", msg)
	}
	for _, s := range []string{"NOTAUTH(BADTIME)", "ahead of", "NTP"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	assertNoSecret(t, err, l.KeySecret())
	t.Logf("message: %v", err)
}

// writer is one danehook instance publishing at a shared owner: it reads
// the RRset, diffs it against what it wants and what it owns, and applies.
type writer struct {
	p            *RFC2136
	desired, own []tlsa.Record
}

func (w *writer) plan(t *testing.T) Plan {
	t.Helper()
	cur, err := w.p.Records(t.Context(), owner)
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	return Diff(owner, 60, cur, w.desired, w.own)
}

// keepOnly returns plan with its Keep entries limited to recs: what a caller
// that knows which records its chains match says its removals rely on.
func keepOnly(plan Plan, recs ...tlsa.Record) Plan {
	var out Plan
	for _, c := range plan {
		if c.Op == Keep && !slices.ContainsFunc(recs, c.Record.Equal) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// TestPrerequisitesTwoWriters runs two writers with Prerequisites on one
// owner of a real BIND, beside a foreign record (decisions P1–P4 in
// rfc2136.go): each adds and later removes only its own records and the
// foreign record survives; a stale plan whose kept record was removed
// meanwhile is refused unchanged; concurrent changes to records a plan does
// not keep (between the plan's read and the UPDATE, or between Apply's own
// read and the UPDATE) go through; a writer that never stops changing the
// RRset makes Apply give up with ErrPrerequisite.
func TestPrerequisitesTwoWriters(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	ctx := t.Context()
	foreign := tlsa.Record{Usage: 3, Selector: 0, MatchingType: 1, Data: bytes.Repeat([]byte{0xf0}, 32)}
	l.Nsupdate(t, "update add "+owner+" 300 IN TLSA "+foreign.String())
	a := &writer{p: labProvider(t, l)}
	b := &writer{p: labProvider(t, l)}
	a.p.Prerequisites, b.p.Prerequisites = true, true
	a1, a2, b1, b2 := rec(0xa1), rec(0xa2), rec(0xb1), rec(0xb2)
	apply := func(name string, w *writer, plan Plan) {
		t.Helper()
		if err := w.p.Apply(ctx, plan); err != nil {
			t.Fatalf("%s: Apply: %v\n%s", name, err, plan)
		}
	}

	// Both publish their current key, then both stage a next key.
	a.desired, a.own = []tlsa.Record{a1}, []tlsa.Record{a1}
	b.desired, b.own = []tlsa.Record{b1}, []tlsa.Record{b1}
	apply("a adds a1", a, a.plan(t))
	apply("b adds b1", b, b.plan(t))
	a.desired, a.own = []tlsa.Record{a1, a2}, []tlsa.Record{a1, a2}
	b.desired, b.own = []tlsa.Record{b1, b2}, []tlsa.Record{b1, b2}
	apply("a adds a2", a, a.plan(t))
	apply("b adds b2", b, b.plan(t))
	assertServed(t, a.p, owner, foreign, a1, a2, b1, b2)

	// Both switch to the next key and remove the old one at the same time:
	// both read, then both apply. b's plan keeps a1, which a removes first:
	// the records b's removal relies on are gone, so b is refused and its
	// zone unchanged; after a re-read b goes through.
	a.desired, b.desired = []tlsa.Record{a2}, []tlsa.Record{b2}
	planA, planB := a.plan(t), b.plan(t)
	apply("a removes a1", a, planA)
	serial := l.Serial(t, l.Primary, "example.test.")
	err := b.p.Apply(ctx, planB)
	if !errors.Is(err, ErrPrerequisite) || !strings.Contains(err.Error(), a1.String()) || !strings.Contains(err.Error(), "re-run") {
		t.Fatalf("b with a stale plan keeping a1: got %v, want ErrPrerequisite naming %s and telling to re-run", err, a1)
	}
	if got := l.Serial(t, l.Primary, "example.test."); got != serial {
		t.Fatalf("serial changed %d -> %d after a refused UPDATE", serial, got)
	}
	apply("b removes b1 after a re-read", b, b.plan(t))
	assertServed(t, a.p, owner, foreign, a2, b2)

	// Both stage a third key.
	a3, b3, b4, b5 := rec(0xa3), rec(0xb3), rec(0xb4), rec(0xb5)
	a.desired, a.own = []tlsa.Record{a2, a3}, []tlsa.Record{a2, a3}
	b.desired, b.own = []tlsa.Record{b2, b3}, []tlsa.Record{b2, b3}
	apply("a adds a3", a, a.plan(t))
	apply("b adds b3", b, b.plan(t))

	// A plan that keeps only what its removal relies on (a's next chain
	// matches a3) is not disturbed by concurrent changes to other records:
	// between a's read and a's UPDATE, b removes b2 and adds b4.
	a.desired = []tlsa.Record{a3}
	planA = keepOnly(a.plan(t), a3)
	b.desired, b.own = []tlsa.Record{b3, b4}, []tlsa.Record{b2, b3, b4}
	apply("b removes b2, adds b4", b, b.plan(t))
	apply("a removes a2 while b changed other records", a, planA)
	assertServed(t, a.p, owner, foreign, a3, b3, b4)

	// An addition between Apply's own read and its UPDATE: BIND answers
	// NXRRSET to the first UPDATE, Apply reads again and the second goes
	// through.
	a4 := rec(0xa4)
	a.desired, a.own = []tlsa.Record{a3, a4}, []tlsa.Record{a3, a4}
	apply("a adds a4", a, a.plan(t))
	a.desired = []tlsa.Record{a4}
	planA = a.plan(t)
	a.p.beforeUpdate = func(attempt int) {
		if attempt == 1 {
			l.Nsupdate(t, "update add "+owner+" 60 IN TLSA "+b5.String())
		}
	}
	before := a.p.Sent().Updates
	apply("a removes a3 while b adds b5", a, planA)
	if got := a.p.Sent().Updates - before; got != 2 {
		t.Fatalf("a: got %d UPDATEs, want 2 (NXRRSET, then success after a re-read)", got)
	}
	assertServed(t, a.p, owner, foreign, a4, b3, b4, b5)

	// A writer that keeps changing the RRset: Apply gives up after
	// prerequisiteAttempts UPDATEs with ErrPrerequisite, nothing removed.
	n := byte(0xc0)
	a.p.beforeUpdate = func(int) {
		n++
		l.Nsupdate(t, "update add "+owner+" 60 IN TLSA "+rec(n).String())
	}
	before = a.p.Sent().Updates
	err = a.p.Apply(ctx, []Change{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: a4}}, {Op: Keep, RR: RR{Owner: owner, Record: foreign}}})
	if !errors.Is(err, ErrPrerequisite) || !strings.Contains(err.Error(), "NXRRSET") {
		t.Fatalf("a against a busy writer: got %v, want ErrPrerequisite (NXRRSET)", err)
	}
	if got := a.p.Sent().Updates - before; got != prerequisiteAttempts {
		t.Fatalf("a against a busy writer: got %d UPDATEs, want %d", got, prerequisiteAttempts)
	}
	a.p.beforeUpdate = nil
	if got := served(t, a.p, owner); !strings.Contains(strings.Join(got, "\n"), a4.String()) {
		t.Fatalf("a4 was removed by a refused UPDATE: %q", got)
	}
	t.Logf("message: %v", err)
}

// TestPrerequisitesSharedRecordsRace is the race Prerequisites exists for:
// two hosts serving the same key behind one owner rely on either of two
// records s (3 1 1) and t (2 1 1). Both read {foreign, s, t}; one decides to
// drop s because t stays, the other to drop t because s stays. Without
// prerequisites both succeed and no record matches their chains; with them
// the second is refused and t survives.
func TestPrerequisitesSharedRecordsRace(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	ctx := t.Context()
	foreign := rec(0xf1)
	s1 := rec(0x51)
	ta := tlsa.Record{Usage: 2, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{0x71}, 32)}
	for _, prereq := range []bool{false, true} {
		l.Nsupdate(t, "update delete "+owner+" TLSA\nupdate add "+owner+" 300 IN TLSA "+foreign.String()+
			"\nupdate add "+owner+" 300 IN TLSA "+s1.String()+"\nupdate add "+owner+" 300 IN TLSA "+ta.String())
		a := &writer{p: labProvider(t, l), desired: []tlsa.Record{ta}, own: []tlsa.Record{s1, ta}}
		b := &writer{p: labProvider(t, l), desired: []tlsa.Record{s1}, own: []tlsa.Record{s1, ta}}
		a.p.Prerequisites, b.p.Prerequisites = prereq, prereq
		planA, planB := a.plan(t), b.plan(t)
		if err := a.p.Apply(ctx, planA); err != nil {
			t.Fatalf("prerequisites=%v: a: %v", prereq, err)
		}
		err := b.p.Apply(ctx, planB)
		if !prereq {
			if err != nil {
				t.Fatalf("without prerequisites: b: %v", err)
			}
			// The race is real: neither s nor t is left.
			assertServed(t, a.p, owner, foreign)
			continue
		}
		if !errors.Is(err, ErrPrerequisite) || !strings.Contains(err.Error(), s1.String()) {
			t.Fatalf("with prerequisites: b: got %v, want ErrPrerequisite naming %s", err, s1)
		}
		assertServed(t, a.p, owner, foreign, ta)
		t.Logf("message: %v", err)
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	t.Parallel()
	// A TCP server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	// A port nothing listens on.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	key := &TSIGKey{Name: "k.", Algorithm: "hmac-sha256", Secret: testSecret}
	t.Run("cancelled", func(t *testing.T) {
		// A cancelled context (SIGTERM in the binaries) ends the wait for
		// the answer at once, not after Timeout.
		p := &RFC2136{Server: ln.Addr().String(), Zone: "example.test.", Key: key, Timeout: time.Minute}
		cause := errors.New("interrupted by SIGTERM")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(200*time.Millisecond, func() { cancel(cause) })
		start := time.Now()
		for name, call := range map[string]func() error{
			"update": func() error {
				return p.Apply(ctx, []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}})
			},
			"read": func() error { _, err := p.Records(ctx, owner); return err },
		} {
			err := call()
			if !errors.Is(err, ErrServer) || !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
				t.Fatalf("%s: got %v, want ErrServer wrapping context.Canceled and the cause", name, err)
			}
			t.Logf("message: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v, want the cancellation to end the wait", d)
		}
	})
	for _, tc := range []struct{ name, server, contains string }{
		{"silent", ln.Addr().String(), "no answer within 300ms"},
		{"closed", closedAddr, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &RFC2136{Server: tc.server, Zone: "example.test.", Key: key, Timeout: 300 * time.Millisecond}
			start := time.Now()
			err := p.Apply(context.Background(), []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}})
			if !errors.Is(err, ErrServer) || !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), tc.server) {
				t.Fatalf("got %v, want ErrServer naming %s and %q", err, tc.server, tc.contains)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %v, want the timeout to apply", time.Since(start))
			}
			assertNoSecret(t, err, testSecret)
			t.Logf("message: %v", err)
		})
	}
}

// TestApplyNeverAddsBesideCNAME: BIND silently ignores a TLSA addition at
// a CNAME owner (RFC 2136 §3.4.2.2); Apply's "no CNAME" prerequisite makes
// the UPDATE fail instead, and nothing in the zone changes.
func TestApplyNeverAddsBesideCNAME(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{})
	l.Nsupdate(t, "update add _25._tcp.alias.example.test. 300 IN CNAME _25._tcp.mail.example.test.\nsend\n")
	p := labProvider(t, l)
	ctx := t.Context()
	err := p.Apply(ctx, []Change{
		{Op: Add, RR: RR{Owner: "_25._tcp.alias.example.test.", TTL: 60, Record: rec(0x21)}},
		{Op: Add, RR: RR{Owner: "_25._tcp.mail.example.test.", TTL: 60, Record: rec(0x22)}},
	})
	if !errors.Is(err, ErrPrerequisite) || !strings.Contains(err.Error(), "CNAME") {
		t.Fatalf("Apply at a CNAME owner: %v, want ErrPrerequisite about the CNAME", err)
	}
	if rrs, err := p.Records(ctx, "_25._tcp.mail.example.test."); err != nil || len(rrs) != 0 {
		t.Errorf("the zone changed: %v, %v", rrs, err)
	}
	// Without a CNAME the same guard passes.
	if err := p.Apply(ctx, []Change{{Op: Add, RR: RR{Owner: "_25._tcp.mail.example.test.", TTL: 60, Record: rec(0x22)}}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// TestApplyZonesIndependent: the zones of one Apply are updated at once
// and independently (decision S2): a zone the key may not change fails
// with its own error (naming it), and the other zones are changed all the
// same, whichever comes first in name order; a failing zone in the middle
// stops neither side. Records are read back from the primary.
func TestApplyZonesIndependent(t *testing.T) {
	t.Parallel()
	zones := []string{"a.test.", "example.test.", "m.test.", "z.test."}
	l := bindlab.Start(t, bindlab.Options{Zones: zones, ExtraKeys: []bindlab.ExtraKey{{
		Name: "narrow",
		// Only the owners in example.test. and z.test. may change.
		Grants: []string{`grant "narrow." name _25._tcp.mail.example.test. TLSA;`, `grant "narrow." name _25._tcp.mail.z.test. TLSA;`},
	}}})
	narrow, err := LoadTSIGKeyFile(l.Keys["narrow."].File)
	if err != nil {
		t.Fatal(err)
	}
	p := &RFC2136{Server: l.Primary, Key: narrow, Timeout: 5 * time.Second}
	r := rec(0x21)
	var plan Plan
	for _, z := range zones {
		plan = append(plan, Change{Op: Add, RR: RR{Owner: "_25._tcp.mail." + z, TTL: 60, Record: r}})
	}
	err = p.Apply(t.Context(), plan)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Apply: got %v, want ErrRefused for a.test. and m.test.", err)
	}
	for _, z := range []string{"a.test.", "m.test."} {
		if !strings.Contains(err.Error(), `"`+z+`"`) && !strings.Contains(err.Error(), " "+z) {
			t.Errorf("Apply's error does not name the refused zone %s: %v", z, err)
		}
	}
	for _, z := range []string{"example.test.", "z.test."} {
		if strings.Contains(err.Error(), z) {
			t.Errorf("Apply's error names %s, which was changed: %v", z, err)
		}
	}
	lab := labProvider(t, l)
	assertServed(t, lab, "_25._tcp.mail.example.test.", r)
	assertServed(t, lab, "_25._tcp.mail.z.test.", r)
	assertServed(t, lab, "_25._tcp.mail.a.test.")
	assertServed(t, lab, "_25._tcp.mail.m.test.")
}

// hintOf is the Hint of err's *UpdateError, "" when it has none.
func hintOf(err error) string {
	var ue *UpdateError
	if errors.As(err, &ue) {
		return ue.Hint()
	}
	return ""
}
