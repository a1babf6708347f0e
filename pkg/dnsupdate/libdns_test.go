package dnsupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	"github.com/miekg/dns"
)

// memDNS is a provider and its authoritative view in memory, for fault
// injection into the adapter (the real providers are tested against their
// API fakes in pkg/libdnsprov and against BIND in cmd/internal/cliapp).
type memDNS struct {
	mu    sync.Mutex
	zones []string
	rrs   map[string][]RR // owner → served
	calls []string        // "append example.com. _25._tcp.mail 3 1 1 …"
	fail  func(op, zone string) error
	block bool
	panic bool
}

func (m *memDNS) FindZone(_ context.Context, owner string) (string, error) {
	for _, z := range m.zones {
		if strings.HasSuffix(owner, "."+z) || owner == z {
			return z, nil
		}
	}
	return "", fmt.Errorf("no zone for %s: %w", owner, ErrNotAuth)
}

func (m *memDNS) Records(_ context.Context, owner string) ([]RR, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RR(nil), m.rrs[owner]...), nil
}

func (m *memDNS) do(ctx context.Context, op, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if m.panic {
		panic("boom")
	}
	if m.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var done []libdns.Record
	for _, r := range recs {
		rr := r.RR()
		m.mu.Lock()
		m.calls = append(m.calls, fmt.Sprintf("%s %s %s %s %d", op, zone, rr.Name, rr.Data, int(rr.TTL.Seconds())))
		m.mu.Unlock()
		if m.fail != nil {
			if err := m.fail(op, zone); err != nil {
				return done, err
			}
		}
		done = append(done, r)
	}
	return done, nil
}

func (m *memDNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return m.do(ctx, "append", zone, recs)
}

func (m *memDNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return m.do(ctx, "delete", zone, recs)
}

func ldRec(b byte) tlsa.Record {
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{b}, 32)}
}

func ldAdd(o string, r tlsa.Record) Change {
	return Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: r}}
}
func ldRemove(o string, r tlsa.Record) Change { return Change{Op: Remove, RR: RR{Owner: o, Record: r}} }

func newMem() (*memDNS, *Libdns) {
	m := &memDNS{zones: []string{"example.com.", "example.org."}, rrs: map[string][]RR{}}
	return m, &Libdns{Name: "mem", Provider: m, Reader: m, Timeout: time.Second}
}

// Opaque TLSA, names relative to the zone ("@" at the apex), lower-case
// hex; adds of every zone before any remove; served adds and gone removes
// skipped; Keep ignored.
func TestLibdnsApplyOrderAndForm(t *testing.T) {
	m, l := newMem()
	old := ldRec(0x01)
	m.rrs["_25._tcp.mail.example.com."] = []RR{{Owner: "_25._tcp.mail.example.com.", TTL: 300, Record: old}}
	m.rrs["_25._tcp.mail.example.org."] = []RR{{Owner: "_25._tcp.mail.example.org.", TTL: 300, Record: ldRec(0x09)}}
	err := l.Apply(t.Context(), []Change{
		ldRemove("_25._tcp.mail.example.com.", old),
		ldAdd("_25._tcp.mail.example.com.", ldRec(0xAB)),
		{Op: Keep, RR: RR{Owner: "_25._tcp.mail.example.com.", Record: ldRec(0x02)}},
		ldAdd("example.org.", ldRec(0xCD)),
		ldAdd("_25._tcp.mail.example.org.", ldRec(0x09)),    // served: skipped
		ldRemove("_25._tcp.mail.example.org.", ldRec(0x0A)), // gone: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"append example.com. _25._tcp.mail 3 1 1 " + strings.Repeat("ab", 32) + " 300",
		"append example.org. @ 3 1 1 " + strings.Repeat("cd", 32) + " 300",
		"delete example.com. _25._tcp.mail 3 1 1 " + strings.Repeat("01", 32) + " 0",
	}
	if strings.Join(m.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(m.calls, "\n"), strings.Join(want, "\n"))
	}
	m.calls = nil
	if err := l.Apply(t.Context(), []Change{{Op: Keep, RR: RR{Owner: "x.example.com.", Record: old}}}); err != nil || len(m.calls) != 0 {
		t.Errorf("Keep only: %v, calls %v; want nothing sent", err, m.calls)
	}
}

// A failure in the middle of a batch: the records the provider reports
// done count as applied, the rest of the batch failed, later batches pending.
func TestLibdnsPartialBatch(t *testing.T) {
	m, l := newMem()
	n := 0
	m.fail = func(op, zone string) error {
		n++
		if n == 2 {
			return errors.New("Too Many Requests (429)")
		}
		return nil
	}
	a, b, c := ldRec(1), ldRec(2), ldRec(3)
	o := "_25._tcp.mail.example.com."
	m.rrs[o] = []RR{{Owner: o, Record: c}}
	err := l.Apply(t.Context(), []Change{ldAdd(o, a), ldAdd(o, b), ldRemove(o, c)})
	var ae *LibdnsApplyError
	if !errors.As(err, &ae) || len(ae.Applied) != 1 || !ae.Applied[0].Record.Equal(a) || len(ae.Failed) != 1 || !ae.Failed[0].Record.Equal(b) || len(ae.Pending) != 1 {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, ErrProviderUnavailable) {
		t.Errorf("got %v, want unavailable", err)
	}
	var le *LibdnsError
	if !errors.As(err, &le) || le.Status != 429 || le.Hint() == "" {
		t.Errorf("got %#v, want status 429 with a hint", le)
	}
}

func TestLibdnsFaults(t *testing.T) {
	o := "_25._tcp.mail.example.com."
	t.Run("panic", func(t *testing.T) {
		m, l := newMem()
		m.panic = true
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderUnavailable) || !strings.Contains(err.Error(), "panicked: boom") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		m, l := newMem()
		m.block = true
		l.Timeout = 100 * time.Millisecond
		start := time.Now()
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderUnavailable) || !strings.Contains(err.Error(), "200ms") {
			t.Fatalf("got %v, want unavailable naming the 200ms budget", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		m, l := newMem()
		m.block = true
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		err := l.Apply(ctx, []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("secret redacted", func(t *testing.T) {
		const secret = "tok-SECRET-abcdef=="
		m, l := newMem()
		l.Secrets = []string{secret}
		m.fail = func(string, string) error {
			return errors.New("unexpected status code 401: token tok-SECRET-abcdef== and tok-SECRET-abcdef refused")
		}
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderAuth) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("got %v, want auth without the secret", err)
		}
	})
	t.Run("no data", func(t *testing.T) {
		_, l := newMem()
		err := l.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: o}}})
		if !errors.Is(err, ErrProviderRequest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("reader error before any call", func(t *testing.T) {
		m, l := newMem()
		err := l.Apply(t.Context(), []Change{ldAdd("_25._tcp.mail.example.net.", ldRec(1))})
		if !errors.Is(err, ErrNotAuth) || len(m.calls) != 0 {
			t.Fatalf("got %v, calls %v", err, m.calls)
		}
	})
}

func TestLibdnsStringHidesProvider(t *testing.T) {
	type secretProvider struct {
		memDNS
		Token string
	}
	l := &Libdns{Name: "x", Provider: &secretProvider{Token: "tok-SECRET"}}
	for _, s := range []string{fmt.Sprint(l), fmt.Sprintf("%+v", l), fmt.Sprintf("%#v", l), l.String()} {
		if strings.Contains(s, "SECRET") || s != `libdns{name="x"}` {
			t.Errorf("got %q", s)
		}
	}
}

// L3: libdns v1.1.1 has no TLSA type; RR.Parse returns a TLSA RR as the
// opaque RR itself. If a later libdns parses TLSA, revisit libdnsRR.
func TestLibdnsTLSAIsOpaque(t *testing.T) {
	rr := libdnsRR(ldAdd("_25._tcp.mail.example.com.", ldRec(0xAB)), "example.com.")
	want := libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", TTL: 300 * time.Second, Data: "3 1 1 " + strings.Repeat("ab", 32)}
	if rr != want {
		t.Fatalf("got %+v, want %+v", rr, want)
	}
	got, err := rr.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(libdns.RR); !ok {
		t.Fatalf("libdns parses TLSA into %T now: revisit decision L3", got)
	}
}

// rfc2136Len is the uncompressed wire size of rec in zone as
// libdns/rfc2136 v1.0.1 builds it (recordToRR: TXT text split into quoted
// strings of 255 runes, the zone-file line parsed by miekg/dns), measured
// by miekg/dns's Len: independent of libdnsWireBytes.
func rfc2136Len(t testing.TB, rec libdns.Record, zone string) int {
	t.Helper()
	return dns.Len(rfc2136RR(t, rec, zone))
}

func rfc2136RR(t testing.TB, rec libdns.Record, zone string) dns.RR {
	t.Helper()
	rr := rec.RR()
	data := rr.Data
	if rr.Type == "TXT" {
		runes := []rune(data)
		data = ""
		for i := 0; i < len(runes); i += 255 {
			data += fmt.Sprintf("%q ", string(runes[i:min(i+255, len(runes))]))
		}
	}
	d, err := dns.NewRR(fmt.Sprintf("$ORIGIN %s\n%s %d IN %s %s", zone, rr.Name, int(rr.TTL.Seconds()), rr.Type, data))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// measuredCalls is the least number of consecutive calls for recs under
// MessageBytes, by record sizes measured with miekg/dns (rfc2136Len):
// filling each call as far as it goes is optimal for consecutive runs. It
// returns the number of records in each call.
func measuredCalls(t testing.TB, zone string, recs []libdns.Record) []int {
	t.Helper()
	budget := LibdnsRFC2136MessageBytes - 12 - (len(zone) + 1) - 4 - libdnsTSIGReserve
	var out []int
	n, size := 0, 0
	for _, r := range recs {
		b := rfc2136Len(t, r, zone)
		if n > 0 && size+b > budget {
			out = append(out, n)
			n, size = 0, 0
		}
		n++
		size += b
	}
	if n > 0 {
		out = append(out, n)
	}
	return out
}

// bigRec is a 3 0 0 record with n bytes of data (the size of a full
// certificate: an RSA-4096 one is about 1,300), different for every i.
func bigRec(i, n int) tlsa.Record {
	r := rand.New(rand.NewPCG(uint64(i), uint64(n)))
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return tlsa.Record{Usage: 3, Selector: 0, MatchingType: 0, Data: b}
}

// The estimate is from above and exact for what danehook sends (TLSA,
// TXT claims), and the calls it makes are those measured sizes allow:
// each packed and signed as libdns/rfc2136 does is within the bound, and
// one record more would not be.
func TestLibdnsCallsMatchMeasuredSizes(t *testing.T) {
	const zone = "example.test."
	var recs []libdns.Record
	for i := range 900 {
		o := fmt.Sprintf("_25._tcp.h%d.example.test.", i)
		if i%7 == 0 {
			o = fmt.Sprintf("_25._tcp.a-much-longer-mail-host-name-%d.sub.example.test.", i)
		}
		var r tlsa.Record
		switch i % 5 {
		case 0:
			r = bigRec(i, 1300)
		case 1:
			r = tlsa.Record{Usage: 3, Selector: 1, MatchingType: 2, Data: bytes.Repeat([]byte{byte(i)}, 64)}
		default:
			r = ldRec(byte(i))
		}
		recs = append(recs, libdnsRR(ldAdd(o, r), zone))
		if i%9 == 0 {
			recs = append(recs, claimRecord(Claim{Owner: o, Host: "mx-" + strings.Repeat("x", i%40), Record: r}, zone, 60))
		}
	}
	recs = append(recs, libdnsRR(ldAdd(zone, ldRec(1)), zone)) // "@"
	for _, r := range recs {
		if got, want := libdnsWireBytes(r, zone), rfc2136Len(t, r, zone); got != want {
			t.Fatalf("libdnsWireBytes(%v) = %d, miekg/dns measures %d", r.RR(), got, want)
		}
	}
	ends := libdnsCalls(LibdnsLimit{MessageBytes: LibdnsRFC2136MessageBytes}, zone, recs)
	var got []int
	start := 0
	for _, e := range ends {
		got = append(got, e-start)
		start = e
	}
	want := measuredCalls(t, zone, recs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("calls carry %v records, want %v", got, want)
	}
	if len(got) < 3 {
		t.Fatalf("only %d calls: the test needs a set that overflows several messages", len(got))
	}
	// Each call as one signed UPDATE (the longest key name, HMAC-SHA512):
	// within the bound; the next record would not fit the estimate.
	key := strings.Repeat("k", 60) + "." + strings.Repeat("n", 60) + ".example.test."
	start = 0
	for i, e := range ends {
		m := new(dns.Msg)
		m.SetUpdate(zone)
		for _, r := range recs[start:e] {
			m.Insert([]dns.RR{rfc2136RR(t, r, zone)})
		}
		m.SetTsig(key, dns.HmacSHA512, 300, time.Now().Unix())
		wire, _, err := dns.TsigGenerate(m, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) > LibdnsRFC2136MessageBytes {
			t.Errorf("call %d is a %d-byte UPDATE, bound %d", i+1, len(wire), LibdnsRFC2136MessageBytes)
		}
		if e < len(recs) && len(wire)+rfc2136Len(t, recs[e], zone) <= LibdnsRFC2136MessageBytes-libdnsTSIGReserve {
			t.Errorf("call %d (%d bytes) left room for the next record (%d bytes)", i+1, len(wire), rfc2136Len(t, recs[e], zone))
		}
		start = e
	}
	// No bound: one call; a record bound alone.
	if e := libdnsCalls(LibdnsLimit{}, zone, recs); len(e) != 1 || e[0] != len(recs) {
		t.Errorf("no bound: ends %v, want [%d]", e, len(recs))
	}
	if e := libdnsCalls(LibdnsLimit{Records: 400}, zone, recs[:1000]); fmt.Sprint(e) != "[400 800 1000]" {
		t.Errorf("400 records a call: ends %v", e)
	}
	if e := libdnsCalls(LibdnsLimit{MessageBytes: 100}, zone, recs[:3]); fmt.Sprint(e) != "[1 2 3]" {
		t.Errorf("records over the bound alone: ends %v, want one call each", e)
	}
}

func TestLibdnsLimitOf(t *testing.T) {
	if got := LibdnsLimitOf(&rfc2136.Provider{}); got != (LibdnsLimit{MessageBytes: LibdnsRFC2136MessageBytes}) {
		t.Errorf("rfc2136: %+v", got)
	}
	if got := LibdnsLimitOf(&memDNS{}); got != (LibdnsLimit{}) {
		t.Errorf("another provider: %+v, want no bound", got)
	}
	l := &Libdns{Provider: &rfc2136.Provider{}, Limit: LibdnsLimit{Records: 5}}
	if got := l.limit(); got != (LibdnsLimit{Records: 5}) {
		t.Errorf("Limit set: %+v", got)
	}
}

// callLog wraps a provider: it keeps every call's records and makes call
// failAt (counted from 1) fail after handing its first partial records to
// the wrapped provider, returning those as done (as libdns providers
// report the records handled so far).
type callLog struct {
	inner   LibdnsProvider
	failAt  int
	partial int
	mu      sync.Mutex
	calls   []loggedCall
}

type loggedCall struct {
	op, zone string
	recs     []libdns.Record
}

func (c *callLog) do(ctx context.Context, op, zone string, recs []libdns.Record,
	f func(context.Context, string, []libdns.Record) ([]libdns.Record, error)) ([]libdns.Record, error) {
	c.mu.Lock()
	c.calls = append(c.calls, loggedCall{op, zone, recs})
	n := len(c.calls)
	c.mu.Unlock()
	if n != c.failAt {
		return f(ctx, zone, recs)
	}
	got, err := f(ctx, zone, recs[:c.partial])
	if err != nil {
		return got, err
	}
	return got, errors.New("Service Unavailable (503)")
}

func (c *callLog) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return c.do(ctx, "add", zone, recs, c.inner.AppendRecords)
}

func (c *callLog) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return c.do(ctx, "remove", zone, recs, c.inner.DeleteRecords)
}

// keys names each record the calls carried ("add owner 3 1 1 …"), in order.
func (c *callLog) keys() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]string
	for _, call := range c.calls {
		var ks []string
		for _, r := range call.recs {
			rr := r.RR()
			ks = append(ks, call.op+" "+libdns.AbsoluteName(rr.Name, call.zone)+" "+rr.Data)
		}
		out = append(out, ks)
	}
	return out
}

func changeKeys(chs []Change) []string {
	var out []string
	for _, ch := range chs {
		op := "add"
		if ch.Op == Remove {
			op = "remove"
		}
		out = append(out, op+" "+ch.Owner+" "+libdnsRR(ch, "").Data)
	}
	return out
}

func flat(calls [][]string) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c...)
	}
	return out
}

// A failure in any call of a split Apply (two zones, additions in several
// calls each, then removals in several): Applied is what was found done
// plus every earlier call plus the failing call's done prefix, Failed the
// rest of that call, Pending every later call, exactly.
func TestLibdnsSplitPartialProgress(t *testing.T) {
	plan := func() (*memDNS, []Change, []Change) {
		m, _ := newMem()
		var chs, done []Change
		for i := range 7 {
			chs = append(chs, ldAdd(fmt.Sprintf("_25._tcp.h%d.example.com.", i), ldRec(byte(10+i))))
		}
		for i := range 4 {
			chs = append(chs, ldAdd(fmt.Sprintf("_25._tcp.h%d.example.org.", i), ldRec(byte(20+i))))
		}
		for i := range 4 {
			o := fmt.Sprintf("_25._tcp.h%d.example.com.", i)
			m.rrs[o] = []RR{{Owner: o, TTL: 300, Record: ldRec(byte(30 + i))}}
			chs = append(chs, ldRemove(o, ldRec(byte(30+i))))
		}
		o := "_25._tcp.h9.example.org." // already served: applied without a call
		m.rrs[o] = []RR{{Owner: o, TTL: 300, Record: ldRec(99)}}
		done = append(done, ldAdd(o, ldRec(99)))
		chs = append(chs[:3], append([]Change{done[0]}, chs[3:]...)...)
		return m, chs, done
	}
	limit := LibdnsLimit{Records: 3}
	// The calls a successful run makes: com 3+3+1, org 3+1, then removals 3+1.
	m, chs, _ := plan()
	ok := &callLog{inner: m}
	l := &Libdns{Name: "mem", Provider: ok, Reader: m, Limit: limit, Timeout: time.Second}
	if err := l.Apply(t.Context(), chs); err != nil {
		t.Fatal(err)
	}
	all := ok.keys()
	var sizes []int
	for _, c := range all {
		sizes = append(sizes, len(c))
	}
	if fmt.Sprint(sizes) != "[3 3 1 3 1 3 1]" {
		t.Fatalf("calls carried %v records, want [3 3 1 3 1 3 1]", sizes)
	}
	for failAt := 1; failAt <= len(all); failAt++ {
		partial := (failAt - 1) % len(all[failAt-1])
		t.Run(fmt.Sprintf("call %d done %d", failAt, partial), func(t *testing.T) {
			m, chs, done := plan()
			cl := &callLog{inner: m, failAt: failAt, partial: partial}
			l := &Libdns{Name: "mem", Provider: cl, Reader: m, Limit: limit, Timeout: time.Second}
			err := l.Apply(t.Context(), chs)
			var ae *LibdnsApplyError
			if !errors.As(err, &ae) || !errors.Is(err, ErrProviderUnavailable) {
				t.Fatalf("got %v, want a LibdnsApplyError, unavailable", err)
			}
			if got := len(cl.calls); got != failAt {
				t.Fatalf("%d calls made, want %d (none after the failure)", got, failAt)
			}
			wantApplied := append(changeKeys(done), flat(all[:failAt-1])...)
			wantApplied = append(wantApplied, all[failAt-1][:partial]...)
			wantFailed := all[failAt-1][partial:]
			wantPending := flat(all[failAt:])
			for _, c := range []struct {
				name      string
				got, want []string
			}{{"Applied", changeKeys(ae.Applied), wantApplied}, {"Failed", changeKeys(ae.Failed), wantFailed}, {"Pending", changeKeys(ae.Pending), wantPending}} {
				if strings.Join(c.got, "\n") != strings.Join(c.want, "\n") {
					t.Errorf("%s:\n%s\nwant:\n%s", c.name, strings.Join(c.got, "\n"), strings.Join(c.want, "\n"))
				}
			}
			if n := len(ae.Applied) + len(ae.Failed) + len(ae.Pending); n != len(chs) {
				t.Errorf("Applied+Failed+Pending = %d changes, the plan has %d", n, len(chs))
			}
		})
	}
}

// libdnsLab is libdns/rfc2136 against the lab's BIND through an updateLog
// (every UPDATE seen with its size), read back by direct query.
type libdnsLab struct {
	lab    *bindlab.Lab
	log    *updateLog
	inner  *rfc2136.Provider
	reader *RFC2136
}

func startLibdnsLab(t *testing.T, zones ...string) *libdnsLab {
	t.Helper()
	l := bindlab.Start(t, bindlab.Options{TTL: 300, Zones: zones})
	addr, log := startUpdateLog(t, l.Primary)
	return &libdnsLab{lab: l, log: log, reader: labProvider(t, l),
		inner: &rfc2136.Provider{KeyName: l.KeyName, KeyAlg: l.KeyAlgorithm, Key: l.KeySecret(), Server: addr}}
}

func (x *libdnsLab) updates(t *testing.T) uint64 {
	return x.lab.Counters(t, "primary").Requests["UPDATE"]
}

// assertServedAll reads every change's owner by direct query: an Add's
// record is served (or not, with present false), a Remove's is gone.
func (x *libdnsLab) assertServedAll(t *testing.T, chs []Change, present bool) {
	t.Helper()
	errs := make([]string, len(chs))
	forEach(len(chs), 16, func(i int) {
		ch := chs[i]
		rrs, err := x.reader.Records(t.Context(), ch.Owner)
		if err != nil {
			errs[i] = err.Error()
			return
		}
		found := false
		for _, rr := range rrs {
			found = found || rr.Record.Equal(ch.Record)
		}
		if want := (ch.Op == Add) == present; found != want {
			errs[i] = fmt.Sprintf("%s: served %v, want %v", ch, found, want)
		}
	})
	n := 0
	for _, e := range errs {
		if e != "" {
			if n < 5 {
				t.Error(e)
			}
			n++
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d changes not as expected", n, len(chs))
	}
}

// TestLibdnsRFC2136SplitsAgainstBIND publishes through libdns/rfc2136 (one
// call is one UPDATE) to a real BIND what one message cannot carry, in two
// shapes: 1,000 owners of 3 1 1 (75,000 bytes uncompressed) and 150 owners
// of 3 0 0 with a full certificate's 1,300 bytes (200,000 bytes). Each
// succeeds, every record is served, the UPDATEs are as few as the bound
// allows (by sizes measured with miekg/dns) and each is within it, and a
// rerun sends nothing. Then 1,000 replacements (add one, remove one at
// every owner): every UPDATE with additions before the first with
// removals. Last, 500 claims of the ownership registry (TXT) the same way.
func TestLibdnsRFC2136SplitsAgainstBIND(t *testing.T) {
	const zone = "example.test."
	x := startLibdnsLab(t)
	ld := &Libdns{Name: "rfc2136", Provider: x.inner, Reader: x.reader, Timeout: 5 * time.Second}
	ctx := t.Context()
	check := func(t *testing.T, from int, want []int, op string) {
		t.Helper()
		seen := x.log.seen()[from:]
		var got, sizes []int
		for i, m := range seen {
			sizes = append(sizes, m.size)
			n := m.adds
			if op == "remove" {
				n = m.removes
			}
			got = append(got, n)
			if m.size > LibdnsRFC2136MessageBytes {
				t.Errorf("UPDATE %d is %d bytes, bound %d", i+1, m.size, LibdnsRFC2136MessageBytes)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("UPDATEs carried %v records (%s), want %v", got, op, want)
		}
		t.Logf("UPDATE sizes (%s): %v bytes", op, sizes)
	}
	shapes := []struct {
		name string
		chs  []Change
	}{
		{"1000 owners 3 1 1", func() (out []Change) {
			for i := range 1000 {
				out = append(out, ldAdd(splitOwner(i), rec(1)))
			}
			return
		}()},
		{"150 owners 3 0 0 certificate", func() (out []Change) {
			for i := range 150 {
				out = append(out, ldAdd(splitOwner(5000+i), bigRec(i, 1300)))
			}
			return
		}()},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			recs := make([]libdns.Record, len(sh.chs))
			for i, ch := range sh.chs {
				recs[i] = libdnsRR(ch, zone)
			}
			want := measuredCalls(t, zone, recs)
			if len(want) < 2 {
				t.Fatalf("the shape fits one message (%v): no test", want)
			}
			// The plan's count (Messages) is the number Apply sends.
			if n, err := ld.Messages(ctx, sh.chs); err != nil || n[zone] != len(want) || len(n) != 1 {
				t.Errorf("Messages = %v, %v; want %s: %d", n, err, zone, len(want))
			}
			from, before := len(x.log.seen()), x.updates(t)
			start := time.Now()
			if err := ld.Apply(ctx, sh.chs); err != nil {
				t.Fatalf("Apply(%d additions): %v", len(sh.chs), err)
			}
			t.Logf("%d additions in %d UPDATEs %v, %s", len(sh.chs), len(want), want, time.Since(start).Round(time.Millisecond))
			check(t, from, want, "add")
			if got := x.updates(t) - before; got != uint64(len(want)) {
				t.Errorf("BIND counted %d UPDATEs, want %d", got, len(want))
			}
			x.assertServedAll(t, sh.chs, true)
			from, before = len(x.log.seen()), x.updates(t)
			if err := ld.Apply(ctx, sh.chs); err != nil {
				t.Fatal(err)
			}
			if got := x.updates(t) - before; got != 0 || len(x.log.seen()) != from {
				t.Errorf("a rerun sent %d UPDATEs, want 0", got)
			}
		})
	}
	t.Run("1000 replacements", func(t *testing.T) {
		var repl []Change
		var addRecs, rmRecs []libdns.Record
		for i := range 1000 {
			o := splitOwner(i)
			rm, add := ldRemove(o, rec(1)), ldAdd(o, rec(2))
			repl = append(repl, rm, add)
			addRecs, rmRecs = append(addRecs, libdnsRR(add, zone)), append(rmRecs, libdnsRR(rm, zone))
		}
		wantAdds, wantRms := measuredCalls(t, zone, addRecs), measuredCalls(t, zone, rmRecs)
		from := len(x.log.seen())
		if err := ld.Apply(ctx, repl); err != nil {
			t.Fatal(err)
		}
		seen := x.log.seen()[from:]
		if len(seen) != len(wantAdds)+len(wantRms) {
			t.Fatalf("%d UPDATEs %+v, want %d with additions then %d with removals", len(seen), seen, len(wantAdds), len(wantRms))
		}
		for i, m := range seen {
			if adding := i < len(wantAdds); adding != (m.adds > 0) || adding == (m.removes > 0) {
				t.Errorf("UPDATE %d carries %d additions and %d removals: additions all go first, alone", i+1, m.adds, m.removes)
			}
		}
		check(t, from+len(wantAdds), wantRms, "remove")
		x.assertServedAll(t, repl, true)
	})
	t.Run("500 claims", func(t *testing.T) {
		var claims []Claim
		var recs []libdns.Record
		for i := range 500 {
			c := Claim{Owner: splitOwner(i), Host: "mxa.example.test", Record: rec(2)}
			claims = append(claims, c)
			recs = append(recs, claimRecord(c, zone, 60))
		}
		want := measuredCalls(t, zone, recs)
		if len(want) < 2 {
			t.Fatalf("the claims fit one message (%v): no test", want)
		}
		from := len(x.log.seen())
		if err := ld.ApplyClaims(ctx, 60, claims, nil); err != nil {
			t.Fatal(err)
		}
		check(t, from, want, "add")
		errs := make([]error, len(claims))
		forEach(len(claims), 16, func(i int) {
			got, err := x.reader.Claims(ctx, claims[i].Owner)
			if err == nil && (len(got) != 1 || got[0].Text() != claims[i].Text()) {
				err = fmt.Errorf("claims at %s: %v, want %v", claims[i].Owner, got, claims[i])
			}
			errs[i] = err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		from = len(x.log.seen())
		if err := ld.ApplyClaims(ctx, 60, claims, nil); err != nil || len(x.log.seen()) != from {
			t.Errorf("a rerun: %v, %d UPDATEs, want none", err, len(x.log.seen())-from)
		}
	})
}

// TestLibdnsRFC2136SplitFailureAgainstBIND: a split Apply through
// libdns/rfc2136 whose second UPDATE fails after 7 of its records (a
// wrapping provider sends those 7 to BIND, then fails): Applied, Failed and
// Pending are exact and match what BIND serves; a rerun sends exactly the
// rest, in as few UPDATEs as fit; a third run sends nothing.
func TestLibdnsRFC2136SplitFailureAgainstBIND(t *testing.T) {
	x := startLibdnsLab(t, "example.test.", "other.test.")
	ctx := t.Context()
	limit := LibdnsLimitOf(x.inner) // the wrapper hides the provider's type
	var old []Change
	for i := range 5 {
		old = append(old, ldAdd(splitOwner(2000+i), rec(3)))
	}
	if err := (&Libdns{Name: "rfc2136", Provider: x.inner, Reader: x.reader}).Apply(ctx, old); err != nil {
		t.Fatal(err)
	}
	var adds, others, rms []Change
	for i := range 1000 {
		adds = append(adds, ldAdd(splitOwner(i), rec(1)))
	}
	for i := range 10 {
		others = append(others, ldAdd(fmt.Sprintf("_25._tcp.h%d.other.test.", i), rec(1)))
	}
	for _, ch := range old {
		rms = append(rms, ldRemove(ch.Owner, ch.Record))
	}
	plan := append(append(append([]Change(nil), rms...), adds...), others...)

	cl := &callLog{inner: x.inner, failAt: 2, partial: 7}
	ld := &Libdns{Name: "rfc2136", Provider: cl, Reader: x.reader, Limit: limit, Timeout: 5 * time.Second}
	err := ld.Apply(ctx, plan)
	var ae *LibdnsApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want a LibdnsApplyError", err)
	}
	calls := cl.keys()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2 (none after the failure)", len(calls))
	}
	first := len(calls[0])
	if want := measuredCalls(t, "example.test.", recsOf(adds, "example.test."))[0]; first != want {
		t.Fatalf("the first UPDATE carried %d additions, want %d", first, want)
	}
	done := first + 7
	for _, c := range []struct {
		name      string
		got, want []Change
	}{{"Applied", ae.Applied, adds[:done]}, {"Failed", ae.Failed, adds[done:]}, {"Pending", ae.Pending, append(append([]Change(nil), others...), rms...)}} {
		if g, w := strings.Join(changeKeys(c.got), "\n"), strings.Join(changeKeys(c.want), "\n"); g != w {
			t.Errorf("%s: %d changes, want %d:\n%.300s\nwant\n%.300s", c.name, len(c.got), len(c.want), g, w)
		}
	}
	// The message names 10 of each list, not 1,000 changes.
	for _, w := range []string{"applied 798 of 1015 changes", "; and 788 more)", "; and 192 more", " and 199 more: ", "(503)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %s", w, trimmed(err))
		}
	}
	if n := len(err.Error()); n > 4000 {
		t.Errorf("error message is %d bytes", n)
	}
	t.Logf("%v", trimmed(err))
	x.assertServedAll(t, ae.Applied, true)
	x.assertServedAll(t, ae.Failed, false)
	x.assertServedAll(t, ae.Pending, false)

	// The rerun sends the rest: the 202 failed additions, the 10 in
	// other.test., the 5 removals, one UPDATE each.
	cl = &callLog{inner: x.inner}
	ld.Provider = cl
	before := x.updates(t)
	if err := ld.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range cl.keys() {
		sizes = append(sizes, len(c))
	}
	if want := fmt.Sprint([]int{1000 - done, 10, 5}); fmt.Sprint(sizes) != want {
		t.Errorf("the rerun's calls carried %v records, want %s", sizes, want)
	}
	if got := x.updates(t) - before; got != 3 {
		t.Errorf("BIND counted %d UPDATEs, want 3", got)
	}
	x.assertServedAll(t, plan, true)
	before = x.updates(t)
	if err := ld.Apply(ctx, plan); err != nil || len(cl.keys()) != 3 || x.updates(t) != before {
		t.Errorf("a third run: %v, %d calls, %d UPDATEs; want none", err, len(cl.keys())-3, x.updates(t)-before)
	}
}

func recsOf(chs []Change, zone string) []libdns.Record {
	out := make([]libdns.Record, len(chs))
	for i, ch := range chs {
		out[i] = libdnsRR(ch, zone)
	}
	return out
}

// trimmed is err's text cut to 300 characters, for the log.
func trimmed(err error) string {
	s := err.Error()
	if len(s) > 300 {
		return s[:150] + " … " + s[len(s)-150:]
	}
	return s
}

// TestLibdnsRFC2136SplitClaimedAgainstBIND: ApplyClaimed with removals
// that need two UPDATEs in example.test., while another host claims three
// of them and every removal in other.test.: those are kept and returned as
// conflicts, the rest go in as few UPDATEs as fit, and a zone left with no
// removal gets no UPDATE at all.
func TestLibdnsRFC2136SplitClaimedAgainstBIND(t *testing.T) {
	x := startLibdnsLab(t, "example.test.", "other.test.")
	ctx := t.Context()
	ld := &Libdns{Name: "rfc2136", Provider: x.inner, Reader: x.reader, Timeout: 5 * time.Second}
	var adds []Change
	for i := range 1000 {
		adds = append(adds, ldAdd(splitOwner(i), rec(1)))
	}
	for i := range 5 {
		adds = append(adds, ldAdd(fmt.Sprintf("_25._tcp.h%d.other.test.", i), rec(1)))
	}
	if err := ld.Apply(ctx, adds); err != nil {
		t.Fatal(err)
	}
	claimed := map[string]bool{}
	var script strings.Builder
	for _, i := range []int{0, 500, 999, 1000, 1001, 1002, 1003, 1004} {
		claimed[adds[i].Owner] = true
		script.WriteString(claimLine(adds[i].Owner, "mxb", rec(1)))
	}
	x.lab.Nsupdate(t, "zone example.test.\n"+claimScript(script.String(), "example.test.")+"send\nzone other.test.\n"+claimScript(script.String(), "other.test.")+"send\n")
	var rms, kept, gone, keptRemovals []Change
	for _, a := range adds {
		rm := ldRemove(a.Owner, a.Record)
		rms = append(rms, rm)
		if claimed[a.Owner] {
			kept, keptRemovals = append(kept, a), append(keptRemovals, rm)
		} else {
			gone = append(gone, rm)
		}
	}
	from := len(x.log.seen())
	conflicts, err := ld.ApplyClaimed(ctx, "mxa", rms)
	if err != nil {
		t.Fatal(err)
	}
	var got []Change
	for _, c := range conflicts {
		got = append(got, c.Change)
	}
	if g, w := strings.Join(changeKeys(got), "\n"), strings.Join(changeKeys(keptRemovals), "\n"); g != w {
		t.Errorf("conflicts:\n%s\nwant\n%s", g, w)
	}
	var sizes []int
	for _, m := range x.log.seen()[from:] {
		sizes = append(sizes, m.removes)
	}
	if want := measuredCalls(t, "example.test.", recsOf(gone, "example.test.")); fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("removal UPDATEs carried %v records, want %v (none for other.test.)", sizes, want)
	}
	x.assertServedAll(t, gone, true)
	x.assertServedAll(t, kept, true)
}

// claimScript keeps the nsupdate lines of script whose name is in zone.
func claimScript(script, zone string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(script, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(f[2], "."+zone) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestLibdnsMessagesAPIProvider: a provider whose calls are API requests
// has no UPDATE messages to count (the plan then prints no count); with a
// message bound, additions and removals of each zone are counted apart.
func TestLibdnsMessagesAPIProvider(t *testing.T) {
	_, l := newMem()
	if _, err := l.Messages(t.Context(), []Change{ldAdd("_25._tcp.mx.example.com.", ldRec(1))}); !errors.Is(err, ErrNotMessages) {
		t.Errorf("Messages through an API provider = %v, want ErrNotMessages", err)
	}
	l.Limit = LibdnsLimit{MessageBytes: 2000}
	var chs []Change
	for i := range 40 {
		o := fmt.Sprintf("_25._tcp.h%02d.example.com.", i)
		chs = append(chs, ldAdd(o, ldRec(1)), ldRemove(o, ldRec(2)))
	}
	n, err := l.Messages(t.Context(), chs)
	recs := make([]libdns.Record, 40)
	for i := range recs {
		recs[i] = libdnsRR(chs[2*i], "example.com.")
	}
	want := 2 * len(libdnsCalls(l.Limit, "example.com.", recs))
	if err != nil || n["example.com."] != want || want < 4 {
		t.Errorf("Messages = %v, %v; want example.test.: %d (additions and removals split apart)", n, err, want)
	}
}
