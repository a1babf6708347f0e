package dnsupdate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/dnslab"
	"github.com/danehook/danehook/internal/knotlab"
	"github.com/danehook/danehook/internal/pdnslab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// The RFC 2136 interop suite: the same tests against a real BIND, Knot DNS
// and PowerDNS, each a signed primary with a secondary of the same product,
// each started once. Where the servers differ, the table says so and the
// README's "DNS servers" section documents it.

// interopServers are the products the suite runs against.
var interopServers = []struct {
	name  string
	start func(testing.TB, dnslab.Options) *dnslab.Lab
	// ownerGrants: the product limits a key to TLSA at named owners in its
	// plain configuration (PowerDNS grants keys per zone only).
	ownerGrants bool
}{
	{"BIND", dnslab.StartBIND, true},
	{"Knot", knotlab.Start, true},
	{"PowerDNS", pdnslab.Start, false},
}

// interopAlgorithms are the TSIG algorithms the client supports (hmac-md5
// is refused by NewTSIGKey); every server is given one key of each.
var interopAlgorithms = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

const (
	interopZone  = "example.test."
	interopOther = "other.test."
	narrowOwner  = "_25._tcp.narrow.example.test."
)

func interopOptions(ownerGrants bool) dnslab.Options {
	opts := dnslab.Options{Zones: []string{interopZone, interopOther}, TTL: 3, Signed: true}
	for _, alg := range interopAlgorithms {
		opts.ExtraKeys = append(opts.ExtraKeys, dnslab.ExtraKey{Name: "alg-" + alg, Algorithm: alg, Zone: true})
	}
	// hmac-md5: the servers accept it (nsupdate proves it), the client does not.
	opts.ExtraKeys = append(opts.ExtraKeys, dnslab.ExtraKey{Name: "alg-hmac-md5", Algorithm: "hmac-md5", Zone: true})
	// "denied." is known to the server but granted nothing.
	opts.ExtraKeys = append(opts.ExtraKeys, dnslab.ExtraKey{Name: "denied"})
	if ownerGrants {
		opts.ExtraKeys = append(opts.ExtraKeys, dnslab.ExtraKey{Name: "narrow", Owners: []string{narrowOwner}})
	}
	return opts
}

func interopProvider(t testing.TB, l *dnslab.Lab, k dnslab.Key) *RFC2136 {
	t.Helper()
	key, err := LoadTSIGKeyFile(k.File)
	if err != nil {
		t.Fatalf("LoadTSIGKeyFile: %v", err)
	}
	return &RFC2136{Server: l.Primary, Key: key, Timeout: 5 * time.Second}
}

func interopSecrets(l *dnslab.Lab) []string {
	s := []string{l.Key.Secret}
	for _, k := range l.Keys {
		s = append(s, k.Secret)
	}
	return s
}

func TestInterop(t *testing.T) {
	t.Parallel()
	for _, srv := range interopServers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			l := srv.start(t, interopOptions(srv.ownerGrants))
			t.Logf("%s %s primary %s, %s secondary %s, signed: started in %v", l.Product, l.Version, l.Primary, l.SecondaryProduct, l.Secondary, time.Since(start).Round(time.Millisecond))
			t.Run("FindZone", func(t *testing.T) { interopFindZone(t, l) })
			t.Run("OneUpdatePerZone", func(t *testing.T) { interopOneUpdatePerZone(t, l) })
			t.Run("Algorithms", func(t *testing.T) { interopAlgorithmsTest(t, l) })
			t.Run("TTL", func(t *testing.T) { interopTTL(t, l) })
			t.Run("TwoWriters", func(t *testing.T) { interopTwoWriters(t, l) })
			t.Run("Errors", func(t *testing.T) { interopErrors(t, l, srv.ownerGrants) })
			t.Run("BadTime", func(t *testing.T) { interopBadTime(t, l) })
			t.Run("AnswerShapes", func(t *testing.T) { interopAnswerShapes(t, l) })
			t.Run("SameView", func(t *testing.T) { interopSameView(t, l) })
			t.Run("Transfer", func(t *testing.T) { interopTransfer(t, l) })
		})
	}
}

// interopFindZone: zone discovery by SOA queries, the zone cut between two
// served zones, and an owner no zone of the server holds.
func interopFindZone(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	for _, tc := range []struct{ owner, zone string }{
		{"_25._tcp.mail.example.test.", interopZone},
		{"_25._tcp.deep.below.mail.example.test", interopZone},
		{"_25._tcp.MX.Other.Test.", interopOther},
		{"example.test.", interopZone},
	} {
		if got, err := p.FindZone(t.Context(), tc.owner); err != nil || got != tc.zone {
			t.Errorf("FindZone(%q): got %q, %v; want %q", tc.owner, got, err, tc.zone)
		}
	}
	_, err := p.FindZone(t.Context(), "_25._tcp.mail.example.org.")
	if !errors.Is(err, ErrNotAuth) || !strings.Contains(err.Error(), "_25._tcp.mail.example.org.") {
		t.Errorf("FindZone outside the server's zones: got %v, want ErrNotAuth naming the owner", err)
	}
	t.Logf("%s, owner outside its zones: %v", l.Product, err)
}

// interopOneUpdatePerZone: a plan over two zones is one UPDATE per zone;
// each zone's serial moves; the records are read back directly from the
// primary and, after NOTIFY + IXFR/AXFR, from the secondary (signed and
// unsigned reads); a replacement (add + remove) is one message.
func interopOneUpdatePerZone(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	ctx := t.Context()
	o1, o2, o3 := "_25._tcp.mail.example.test.", "_465._tcp.mail.example.test.", "_25._tcp.mx.other.test."
	a, b := rec(0xa1), rec(0xb2)
	s1, s2 := l.Serial(t, l.Primary, interopZone), l.Serial(t, l.Primary, interopOther)
	var plan Plan
	for _, o := range []string{o1, o2, o3} {
		plan = append(plan, Change{Op: Add, RR: RR{Owner: o, TTL: 3, Record: a}}, Change{Op: Add, RR: RR{Owner: o, TTL: 3, Record: b}})
	}
	if err := p.Apply(ctx, plan); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := p.Sent().Updates; got != 2 {
		t.Fatalf("got %d UPDATEs, want 2 (one per zone)", got)
	}
	n1, n2 := l.Serial(t, l.Primary, interopZone), l.Serial(t, l.Primary, interopOther)
	if int32(n1-s1) < 1 || int32(n2-s2) < 1 {
		t.Fatalf("serials %d -> %d and %d -> %d, want both increased", s1, n1, s2, n2)
	}
	t.Logf("%s serial after one UPDATE: %d -> %d", l.Product, s1, n1)
	for _, o := range []string{o1, o2, o3} {
		assertServed(t, p, o, a, b)
	}
	// Replace b by c at o1 only: one UPDATE, the other owners untouched.
	c := rec(0xc3)
	before := p.Sent().Updates
	if err := p.Apply(ctx, Plan{{Op: Keep, RR: RR{Owner: o1, TTL: 3, Record: a}}, {Op: Add, RR: RR{Owner: o1, TTL: 3, Record: c}}, {Op: Remove, RR: RR{Owner: o1, TTL: 3, Record: b}}}); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if got := p.Sent().Updates - before; got != 1 {
		t.Fatalf("replace: got %d UPDATEs, want 1", got)
	}
	assertServed(t, p, o1, a, c)
	assertServed(t, p, o2, a, b)
	// The secondary follows; danehook's reads there are direct TLSA queries,
	// signed (Records) and unsigned (as pkg/propagate sends them).
	for _, z := range []string{interopZone, interopOther} {
		l.WaitSerial(t, l.Secondary, z, l.Serial(t, l.Primary, z), 10*time.Second)
	}
	sec := &RFC2136{Server: l.Secondary, Key: p.Key, Timeout: 5 * time.Second}
	assertServed(t, sec, o1, a, c)
	assertServed(t, sec, o3, a, b)
	unsigned := &RFC2136{Server: l.Secondary, Timeout: 5 * time.Second}
	assertServed(t, unsigned, o2, a, b)
	// Clean up for the other subtests: remove everything added.
	var rm Plan
	for _, o := range []string{o1, o2, o3} {
		for _, r := range []tlsa.Record{a, b, c} {
			rm = append(rm, Change{Op: Remove, RR: RR{Owner: o, TTL: 3, Record: r}})
		}
	}
	if err := p.Apply(ctx, rm); err != nil {
		t.Fatalf("remove: %v", err)
	}
	for _, o := range []string{o1, o2, o3} {
		assertServed(t, p, o)
	}
}

// interopAlgorithmsTest: an add, a read and a remove signed with a key of
// every TSIG algorithm the client supports; hmac-md5 is refused by the
// client before anything is sent.
func interopAlgorithmsTest(t *testing.T, l *dnslab.Lab) {
	for _, alg := range interopAlgorithms {
		t.Run(alg, func(t *testing.T) {
			k := l.Keys["alg-"+alg+"."]
			p := interopProvider(t, l, k)
			if p.Key.Algorithm != alg {
				t.Fatalf("key file of %s read as %s", alg, p.Key.Algorithm)
			}
			o := "_25._tcp." + strings.ReplaceAll(alg, "-", "") + ".example.test."
			r := rec(0x5a)
			if err := p.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: o, TTL: 3, Record: r}}}); err != nil {
				t.Fatalf("add signed with %s: %v", alg, err)
			}
			assertServed(t, p, o, r)
			if err := p.Apply(t.Context(), Plan{{Op: Remove, RR: RR{Owner: o, TTL: 3, Record: r}}}); err != nil {
				t.Fatalf("remove signed with %s: %v", alg, err)
			}
			assertServed(t, p, o)
		})
	}
	// hmac-md5 (RFC 8945 §6: not recommended): the server accepts it from
	// nsupdate; danehook refuses the key file before sending anything.
	md5 := l.Keys["alg-hmac-md5."]
	if out, err := l.NsupdateKey(md5.File, "zone "+interopZone+"\nupdate add _25._tcp.md5.example.test. 3 IN TLSA "+rec(0x5b).String()); err != nil {
		t.Errorf("%s: nsupdate signed with hmac-md5: %v: %s", l.Product, err, out)
	}
	if _, err := LoadTSIGKeyFile(md5.File); err == nil || !strings.Contains(err.Error(), `unsupported algorithm "hmac-md5"`) {
		t.Errorf("LoadTSIGKeyFile with hmac-md5: got %v, want it refused", err)
	}
}

// interopTTL: adding a record with TTL 60 to an RRset another writer
// published with TTL 300. RFC 2181 §5.2 wants one TTL per RRset; the table
// says what each server serves afterwards.
func interopTTL(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	o := "_25._tcp.ttl.example.test."
	old, add := rec(0x31), rec(0x32)
	l.Nsupdate(t, "zone "+interopZone+"\nupdate add "+o+" 300 IN TLSA "+old.String())
	if err := p.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: o, TTL: 60, Record: add}}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	rrs, err := p.Records(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, rr := range rrs {
		got = append(got, rr.TTL)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	t.Logf("%s: RRset TTL after adding a TTL-60 record to a TTL-300 RRset: %v", l.Product, got)
	// Measured on all three: the whole RRset takes the added record's TTL
	// (README "DNS servers").
	if len(rrs) != 2 || !slices.Equal(got, []uint32{60}) {
		t.Errorf("%s serves %d records with TTLs %v, want 2 records with TTL 60 (one TTL per RRset, RFC 2181 §5.2)", l.Product, len(rrs), got)
	}
	if err := p.Apply(t.Context(), Plan{{Op: Remove, RR: RR{Owner: o, TTL: 60, Record: add}}, {Op: Remove, RR: RR{Owner: o, TTL: 300, Record: old}}}); err != nil {
		t.Fatal(err)
	}
}

// interopTwoWriters: two writers with Prerequisites at one owner (decisions
// P1–P4 in rfc2136.go): a stale plan whose kept record the other writer
// removed is refused with nothing changed; an addition between Apply's own
// read and its UPDATE costs one more UPDATE, not a failure.
func interopTwoWriters(t *testing.T, l *dnslab.Lab) {
	ctx := t.Context()
	o := "_25._tcp.writers.example.test."
	foreign := tlsa.Record{Usage: 3, Selector: 0, MatchingType: 1, Data: bytes.Repeat([]byte{0xf0}, 32)}
	l.Nsupdate(t, "zone "+interopZone+"\nupdate add "+o+" 3 IN TLSA "+foreign.String())
	a := &writer{p: interopProvider(t, l, l.Key)}
	b := &writer{p: interopProvider(t, l, l.Keys["alg-hmac-sha512."])}
	a.p.Prerequisites, b.p.Prerequisites = true, true
	a1, a2, b1, b2 := rec(0xa1), rec(0xa2), rec(0xb1), rec(0xb2)
	plan := func(w *writer) Plan {
		cur, err := w.p.Records(ctx, o)
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		return Diff(o, 3, cur, w.desired, w.own)
	}
	apply := func(name string, w *writer, pl Plan) {
		t.Helper()
		if err := w.p.Apply(ctx, pl); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, pl)
		}
	}
	a.desired, a.own = []tlsa.Record{a1, a2}, []tlsa.Record{a1, a2}
	b.desired, b.own = []tlsa.Record{b1, b2}, []tlsa.Record{b1, b2}
	apply("a adds", a, plan(a))
	apply("b adds", b, plan(b))
	assertServed(t, a.p, o, foreign, a1, a2, b1, b2)

	a.desired, b.desired = []tlsa.Record{a2}, []tlsa.Record{b2}
	planA, planB := plan(a), plan(b)
	apply("a removes a1", a, planA)
	serial := l.Serial(t, l.Primary, interopZone)
	err := b.p.Apply(ctx, planB)
	if !errors.Is(err, ErrPrerequisite) || !strings.Contains(err.Error(), a1.String()) {
		t.Fatalf("b with a stale plan keeping a1: got %v, want ErrPrerequisite naming %s", err, a1)
	}
	if got := l.Serial(t, l.Primary, interopZone); got != serial {
		t.Fatalf("serial %d -> %d after a refused UPDATE", serial, got)
	}
	apply("b after a re-read", b, plan(b))
	assertServed(t, a.p, o, foreign, a2, b2)

	// The server itself checks the §2.4.2 prerequisite: between Apply's
	// read and its UPDATE another writer adds a record; the server answers
	// NXRRSET and Apply reads again.
	a3 := rec(0xa3)
	a.desired, a.own = []tlsa.Record{a2, a3}, []tlsa.Record{a2, a3}
	apply("a adds a3", a, plan(a))
	a.desired = []tlsa.Record{a3}
	planA = plan(a)
	a.p.beforeUpdate = func(attempt int) {
		if attempt == 1 {
			l.Nsupdate(t, "zone "+interopZone+"\nupdate add "+o+" 3 IN TLSA "+rec(0xb5).String())
		}
	}
	before := a.p.Sent().Updates
	apply("a removes a2 while b adds b5", a, planA)
	a.p.beforeUpdate = nil
	if got := a.p.Sent().Updates - before; got != 2 {
		t.Fatalf("a: got %d UPDATEs, want 2 (NXRRSET from %s, then success after a re-read)", got, l.Product)
	}
	assertServed(t, a.p, o, foreign, a3, b2, rec(0xb5))
}

// interopErrors: each error class from the real server, with the message
// the README documents, and nothing changed.
func interopErrors(t *testing.T, l *dnslab.Lab, ownerGrants bool) {
	wrongSecret := base64Of("this is not the secret of the key")
	owner := "_25._tcp.errors.example.test."
	type tc struct {
		name     string
		p        *RFC2136
		owner    string
		class    error
		contains []string
		// untold: the server answers this TSIG failure without a TSIG
		// error (PowerDNS); the message says so instead of naming it.
		untold bool
	}
	untold := l.Product == "PowerDNS"
	tsigWant := func(named ...string) []string {
		if untold {
			return []string{"without saying why", "pdnsutil list-tsig-keys", "NTP"}
		}
		return named
	}
	good := interopProvider(t, l, l.Key)
	denied := interopProvider(t, l, l.Keys["denied."])
	tests := []tc{
		{"BADSIG", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: l.Key.Name, Algorithm: "hmac-sha256", Secret: wrongSecret}},
			owner, ErrTSIG, append(tsigWant("NOTAUTH(BADSIG)", "wrong secret or algorithm"), l.Key.Name, l.Primary), untold},
		{"BADKEY", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: "nosuchkey.", Algorithm: "hmac-sha256", Secret: l.Key.Secret}},
			owner, ErrTSIG, append(tsigWant("NOTAUTH(BADKEY)", "does not know key"), `"nosuchkey."`), untold},
		{"wrong algorithm", &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: l.Key.Name, Algorithm: "hmac-sha512", Secret: l.Key.Secret}},
			owner, ErrTSIG, append(tsigWant("NOTAUTH(BADKEY)", "hmac-sha512"), l.Key.Name), untold},
		{"NOTAUTH", &RFC2136{Server: l.Primary, Key: good.Key, Zone: "nothere.test."},
			"_25._tcp.mail.nothere.test.", ErrNotAuth, []string{`"nothere.test."`, "zone setting"}, false},
		{"REFUSED key granted nothing", &RFC2136{Server: l.Primary, Key: denied.Key, Zone: interopZone},
			owner, ErrRefused, []string{`"denied."`, "not allowed", "TSIG-ALLOW-DNSUPDATE"}, false},
		{"REFUSED unsigned", &RFC2136{Server: l.Primary, Zone: interopZone},
			owner, ErrRefused, []string{"not allowed", "TSIG key"}, false},
	}
	if ownerGrants {
		narrow := interopProvider(t, l, l.Keys["narrow."])
		tests = append(tests, tc{"REFUSED other owner", &RFC2136{Server: l.Primary, Key: narrow.Key},
			"_25._tcp.other.example.test.", ErrRefused, []string{`"_25._tcp.other.example.test."`, `"narrow."`, "update-policy", "action: update"}, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Timeout = 5 * time.Second
			if tc.p.Zone == "" {
				tc.p.Zone = interopZone
			}
			serial := l.Serial(t, l.Primary, interopZone)
			err := tc.p.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: tc.owner, TTL: 3, Record: rec(0x42)}}})
			t.Logf("%s: %v", l.Product, err)
			if !errors.Is(err, tc.class) {
				t.Fatalf("got %v, want class %v", err, tc.class)
			}
			var ue *UpdateError
			if !errors.As(err, &ue) {
				t.Fatalf("got %T, want *UpdateError", err)
			}
			if tc.untold && (ue.TSIGError != 0 || !errors.Is(err, errUntoldTSIG)) {
				t.Errorf("got TSIG error %d (%v), want the untold TSIG failure", ue.TSIGError, err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			assertNoSecret(t, err, append(interopSecrets(l), wrongSecret)...)
			if got := l.Serial(t, l.Primary, interopZone); got != serial {
				t.Fatalf("serial %d -> %d after a failed UPDATE", serial, got)
			}
		})
	}
	if ownerGrants {
		// The narrow key may change the owner it is granted.
		narrow := interopProvider(t, l, l.Keys["narrow."])
		r := rec(0x43)
		if err := narrow.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: narrowOwner, TTL: 3, Record: r}}}); err != nil {
			t.Fatalf("granted update with the narrow key: %v", err)
		}
		// One UPDATE with a granted and a refused change is refused whole.
		err := narrow.Apply(t.Context(), Plan{{Op: Remove, RR: RR{Owner: narrowOwner, TTL: 3, Record: r}}, {Op: Add, RR: RR{Owner: "_25._tcp.other.example.test.", TTL: 3, Record: r}}})
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("mixed UPDATE: got %v, want ErrRefused", err)
		}
		assertServed(t, good, narrowOwner, r)
		// Prerequisites (TLSA at the same owner) pass the key's type and
		// owner restrictions: a replacement keeping a record goes through.
		narrow.Prerequisites = true
		r2, r3 := rec(0x44), rec(0x45)
		if err := narrow.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: narrowOwner, TTL: 3, Record: r2}}}); err != nil {
			t.Fatal(err)
		}
		if err := narrow.Apply(t.Context(), Plan{{Op: Keep, RR: RR{Owner: narrowOwner, TTL: 3, Record: r2}}, {Op: Add, RR: RR{Owner: narrowOwner, TTL: 3, Record: r3}}, {Op: Remove, RR: RR{Owner: narrowOwner, TTL: 3, Record: r}}}); err != nil {
			t.Fatalf("narrow key, removal with a prerequisite: %v", err)
		}
		assertServed(t, good, narrowOwner, r2, r3)
	}
	// Reads signed with a wrong secret fail as TSIG errors too.
	bad := &RFC2136{Server: l.Primary, Timeout: 5 * time.Second, Key: &TSIGKey{Name: l.Key.Name, Algorithm: "hmac-sha256", Secret: wrongSecret}}
	if _, err := bad.Records(t.Context(), owner); !errors.Is(err, ErrTSIG) {
		t.Fatalf("Records with a wrong secret: got %v, want ErrTSIG", err)
	}
}

// interopBadTime signs with a clock one hour ahead.
func interopBadTime(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	p.now = func() time.Time { return time.Now().Add(time.Hour) }
	p.Zone = interopZone
	err := p.Apply(t.Context(), Plan{{Op: Add, RR: RR{Owner: "_25._tcp.badtime.example.test.", TTL: 3, Record: rec(1)}}})
	t.Logf("%s: %v", l.Product, err)
	var ue *UpdateError
	if l.Product == "PowerDNS" {
		// PowerDNS answers REFUSED without a TSIG record: no server time.
		if !errors.Is(err, ErrTSIG) || !errors.Is(err, errUntoldTSIG) || !strings.Contains(err.Error(), "NTP") {
			t.Fatalf("got %v, want the untold TSIG failure naming the clocks", err)
		}
		return
	}
	if !errors.Is(err, ErrTSIG) || !errors.As(err, &ue) || ue.TSIGError != dns.RcodeBadTime {
		t.Fatalf("got %v, want ErrTSIG with BADTIME", err)
	}
	if s := ue.Skew(); s < 59*time.Minute || s > 61*time.Minute {
		t.Errorf("skew: got %v, want about 1h", s)
	}
	for _, s := range []string{"(BADTIME)", "ahead of", "NTP"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	// The hour in whole seconds: the server's clock has 1 s resolution and
	// its second may tick between our signing and its check (CI once saw
	// 3601 s).
	if !strings.Contains(err.Error(), "3599 s") && !strings.Contains(err.Error(), "3600 s") && !strings.Contains(err.Error(), "3601 s") {
		t.Errorf("error %q does not name the skew, 3600 ± 1 s", err)
	}
	assertNoSecret(t, err, interopSecrets(l)...)
}

// interopAnswerShapes asserts the table at the top of diagnose.go: how each
// server answers the requests it does not accept, read raw (RCODE and the
// answer's TSIG record) with miekg/dns. A server release that answers
// otherwise fails here, and the table, the README's "DNS servers" and
// diagnose must be looked at again.
func interopAnswerShapes(t *testing.T, l *dnslab.Lab) {
	wrong := base64Of("this is not the secret of the key")
	type req struct {
		name, key, alg, secret string
		skew                   time.Duration
		update                 bool
		zone                   string
	}
	reqs := []req{
		{"update, wrong secret", l.Key.Name, "hmac-sha256", wrong, 0, true, interopZone},
		{"update, unknown key", "nosuchkey.", "hmac-sha256", l.Key.Secret, 0, true, interopZone},
		{"update, clock skew", l.Key.Name, "hmac-sha256", l.Key.Secret, time.Hour, true, interopZone},
		{"update, key not granted", "denied.", "hmac-sha256", l.Keys["denied."].Secret, 0, true, interopZone},
		{"update, unsigned", "", "", "", 0, true, interopZone},
		{"update, zone not served", l.Key.Name, "hmac-sha256", l.Key.Secret, 0, true, "nothere.test."},
		{"query, wrong secret", l.Key.Name, "hmac-sha256", wrong, 0, false, interopZone},
	}
	want := map[string][]string{
		"BIND":     {"NOTAUTH BADSIG", "NOTAUTH BADKEY", "NOTAUTH BADTIME", "REFUSED signed", "REFUSED unsigned", "NOTAUTH signed", "NOTAUTH BADSIG"},
		"Knot":     {"NOTAUTH BADSIG", "NOTAUTH BADKEY", "NOTAUTH BADTIME", "NOTAUTH BADKEY", "NOTAUTH unsigned", "NOTAUTH unsigned", "NOTAUTH BADSIG"},
		"PowerDNS": {"REFUSED unsigned", "REFUSED unsigned", "REFUSED unsigned", "REFUSED signed", "REFUSED unsigned", "REFUSED signed", "NOTAUTH unsigned"},
	}[l.Product]
	for i, rq := range reqs {
		m := new(dns.Msg)
		if rq.update {
			m.SetUpdate(rq.zone)
			m.Insert([]dns.RR{tlsaRR(RR{Owner: "_25._tcp.shape." + rq.zone, TTL: 3, Record: rec(0x77)})})
		} else {
			m.SetQuestion(rq.zone, dns.TypeSOA)
		}
		c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
		if rq.key != "" {
			c.TsigSecret = map[string]string{rq.key: rq.secret}
			m.SetTsig(rq.key, dns.Fqdn(rq.alg), tsigFudge, time.Now().Add(rq.skew).Unix())
		}
		r, _, err := c.Exchange(m, l.Primary)
		if r == nil {
			t.Errorf("%s: no answer: %v", rq.name, err)
			continue
		}
		got := dns.RcodeToString[r.Rcode] + " unsigned"
		if ts := r.IsTsig(); ts != nil && ts.Error != 0 {
			got = dns.RcodeToString[r.Rcode] + " " + dns.RcodeToString[int(ts.Error)]
		} else if ts != nil {
			got = dns.RcodeToString[r.Rcode] + " signed"
		}
		t.Logf("%s %s: %s", l.Product, rq.name, got)
		if got != want[i] {
			t.Errorf("%s %s: got %q, want %q (diagnose.go's table)", l.Product, rq.name, got, want[i])
		}
	}
}

// interopSameView: each server answers unsigned queries from the zone
// signed UPDATEs change (one view), so the engine's unsigned reads are
// shared (decision V1): the unsigned read finds the zone and the RRset the
// signed read finds, and SameView agrees for both zones; with a key the
// server does not know it does not (the engine then reads signed, which
// reports the TSIG failure).
func interopSameView(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	ctx := t.Context()
	for _, z := range []string{interopZone, interopOther} {
		if same, why := p.SameView(ctx, z); !same {
			t.Errorf("%s: SameView(%s) = false (%s), want true", l.Product, z, why)
		}
	}
	o := "_25._tcp.view.example.test."
	if err := p.Apply(ctx, Plan{{Op: Add, RR: RR{Owner: o, TTL: 3, Record: rec(0x5e)}}}); err != nil {
		t.Fatal(err)
	}
	zone, urrs, err := p.UnsignedZoneRecords(ctx, o)
	srrs, serr := p.Records(ctx, o)
	if err != nil || serr != nil || zone != interopZone || len(urrs) != 1 || len(srrs) != 1 || !urrs[0].Record.Equal(srrs[0].Record) {
		t.Errorf("%s: unsigned read %q %v (%v), signed %v (%v); want zone %s and the same one record", l.Product, zone, urrs, err, srrs, serr, interopZone)
	}
	bad := &RFC2136{Server: l.Primary, Key: &TSIGKey{Name: "nosuchkey.", Algorithm: "hmac-sha256", Secret: l.Key.Secret}, Timeout: 5 * time.Second}
	if same, why := bad.SameView(ctx, interopZone); same || !strings.Contains(why, "signed SOA query failed") {
		t.Errorf("%s: SameView with an unknown key = %t (%s), want false naming the signed query", l.Product, same, why)
	}
}

// interopTransfer: each product's primary gives the lab key the signed
// zone by AXFR (its secondary's transfers use that key), and the copy reads
// exactly what direct queries read at owners with records, without and at
// names that do not exist; a key the server knows but does not allow to
// transfer is refused (each product's answer is logged), and the error
// holds no secret (decision X1, transfer.go).
func interopTransfer(t *testing.T, l *dnslab.Lab) {
	p := interopProvider(t, l, l.Key)
	ctx := t.Context()
	owners := []string{"_25._tcp.xfr1.example.test.", "_25._tcp.xfr2.example.test."}
	if err := p.Apply(ctx, Plan{
		{Op: Add, RR: RR{Owner: owners[0], TTL: 3, Record: rec(0x61)}},
		{Op: Add, RR: RR{Owner: owners[0], TTL: 3, Record: rec(0x62)}},
		{Op: Add, RR: RR{Owner: owners[1], TTL: 3, Record: rec(0x63)}},
	}); err != nil {
		t.Fatal(err)
	}
	// Enough records for a transfer of several messages: the TSIG of each
	// message after the first covers the previous MAC and the message
	// (RFC 8945 §5.3.1), which each product must get right.
	var bulk Plan
	for i := range 600 {
		bulk = append(bulk, Change{Op: Add, RR: RR{Owner: fmt.Sprintf("_25._tcp.bulk%03d.example.test.", i), TTL: 3, Record: rec(0x64)}})
	}
	if err := p.Apply(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	z, err := p.TransferZone(ctx, "", interopZone, 0)
	if err != nil {
		t.Fatalf("%s: TransferZone with the lab key: %v", l.Product, err)
	}
	t.Logf("%s: the signed zone's transfer moved %d records (serial %d)", l.Product, z.Records, z.SOA.Serial)
	if z.Records < 4*600 {
		t.Errorf("%s: the transfer moved %d records, want the 600 bulk owners signed (TLSA, NSEC, 2 RRSIG each) at least", l.Product, z.Records)
	}
	if got, ok := z.Lookup("_25._tcp.bulk599.example.test."); !ok || len(got) != 1 {
		t.Errorf("%s: the last bulk owner from the copy: %v, %t", l.Product, got, ok)
	}
	for _, o := range append(owners, "_25._tcp.nothere.example.test.", "example.test.") {
		got, ok := z.Lookup(o)
		want, err := p.Records(ctx, o)
		if err != nil {
			t.Fatalf("Records(%s): %v", o, err)
		}
		if g, w := rrText(got), rrText(want); !ok || !slices.Equal(g, w) {
			t.Errorf("%s: Lookup(%s) = %q, %t; the direct query reads %q", l.Product, o, g, ok, w)
		}
	}
	denied, err := LoadTSIGKeyFile(l.Keys["denied."].File)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&RFC2136{Server: l.Primary, Key: denied, Timeout: 5 * time.Second}).TransferZone(ctx, "", interopZone, 0)
	if err == nil || !strings.Contains(err.Error(), interopZone) {
		t.Errorf("%s: a transfer with a key not allowed to transfer: got %v, want an error naming the zone", l.Product, err)
	}
	for _, sec := range interopSecrets(l) {
		if err != nil && strings.Contains(err.Error(), sec) {
			t.Errorf("%s: the refusal holds a secret", l.Product)
		}
	}
	t.Logf("%s, key not allowed to transfer: %v", l.Product, err)
}
