package propagate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/tlsa"
)

const owner = "_25._tcp.mail.example.test."

func rec(t testing.TB, h string) tlsa.Record {
	t.Helper()
	data, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: data}
}

// twoNS is the classic lab: ns1 at 127.0.0.1 (also the primary), ns2 at
// 127.0.0.2, both on the same port.
func twoNS(serial uint32, extra ...string) []string {
	return zone(serial, append([]string{
		"example.test. 3600 IN NS ns1.example.test.",
		"example.test. 3600 IN NS ns2.example.test.",
		"ns1.example.test. 3600 IN A 127.0.0.1",
		"ns2.example.test. 3600 IN A 127.0.0.2",
	}, extra...)...)
}

func names(o *Observation) []string {
	var out []string
	for _, s := range o.Servers {
		out = append(out, s.Name+"="+s.Addr)
	}
	return out
}

func state(t *testing.T, o *Observation, addr string) ServerState {
	t.Helper()
	for _, s := range o.Servers {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("no server %s in %v", addr, names(o))
	return ServerState{}
}

func TestObserveTwoServersInSync(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	p := newFake(t, twoNS(7, tl)...)
	s := newFake(t, twoNS(7, tl)...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}

	obs, err := c.Observe(t.Context(), "Example.Test", "_25._TCP.mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(obs), []string{"ns1.example.test.=" + addr("127.0.0.1", port), "ns2.example.test.=" + addr("127.0.0.2", port)}; !slices.Equal(got, want) {
		t.Fatalf("servers: got %v, want %v", got, want)
	}
	if obs.Zone != "example.test." || obs.Owner != owner {
		t.Errorf("zone, owner: got %q %q, want %q %q", obs.Zone, obs.Owner, "example.test.", owner)
	}
	if obs.PrimarySerial != 7 || obs.NegativeTTL != 300 {
		t.Errorf("primary serial, negative TTL: got %d %d, want 7 300", obs.PrimarySerial, obs.NegativeTTL)
	}
	for _, st := range obs.Servers {
		if !st.OK() || st.Serial != 7 || st.Lagging || st.TTL != 600 || len(st.Records) != 1 || !st.Serves(rec(t, hexA)) {
			t.Errorf("server %s: got %+v, want reachable, serial 7, TTL 600, serving %s", st.Addr, st, hexA)
		}
	}
	if n := p.rd.Load() + s.rd.Load(); n != 0 {
		t.Errorf("queries with RD set: got %d, want 0", n)
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 "
	p := newFake(t, twoNS(3, tl+hexA, tl+hexB)...)
	p.truncateUDP = true
	s := newFake(t, twoNS(3, tl+hexA, tl+hexB)...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}

	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	st := state(t, obs, addr("127.0.0.1", port))
	if !st.OK() || len(st.Records) != 2 || st.Serial != 3 {
		t.Errorf("truncating server: got %+v, want 2 records and serial 3 over TCP", st)
	}
	if p.tcp.Load() == 0 {
		t.Errorf("TCP queries to the truncating server: got 0, want some")
	}
	if s.tcp.Load() != 0 {
		t.Errorf("TCP queries to the other server: got %d, want 0", s.tcp.Load())
	}
}

// TestTruncatedOverTCPIsAnError: a server whose answer is still truncated
// over TCP (TC set, one of two records) is reported as failing, never read
// as a one-record RRset; a truncating primary fails the observation.
func TestTruncatedOverTCPIsAnError(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 "
	p := newFake(t, twoNS(3, tl+hexA, tl+hexB)...)
	s := newFake(t, twoNS(3, tl+hexA, tl+hexB)...)
	s.truncateUDP, s.truncateTCP = true, true
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}

	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	if st := state(t, obs, addr("127.0.0.1", port)); !st.OK() || len(st.Records) != 2 {
		t.Errorf("primary: got %+v, want OK with 2 records", st)
	}
	st := state(t, obs, addr("127.0.0.2", port))
	if st.OK() || !strings.Contains(st.Err, "truncated") || len(st.Records) != 0 {
		t.Errorf("truncating secondary: got ok=%v err=%q records=%d, want an error about truncation and no records", st.OK(), st.Err, len(st.Records))
	}
	if s.tcp.Load() == 0 {
		t.Errorf("TCP queries to the truncating server: got 0, want the retry over TCP")
	}

	// The same fault at the primary fails the whole observation.
	c = &Checker{Primary: addr("127.0.0.2", port), Port: port, Timeout: time.Second}
	if _, err := c.Observe(t.Context(), "example.test.", owner); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncating primary: got %v, want ErrTruncated", err)
	}
}

// TestCancelStopsWaiting: a cancelled context (SIGTERM in the binaries) ends
// the wait for a server that never answers at once, not after Timeout, and
// the error carries the cause.
func TestCancelStopsWaiting(t *testing.T) {
	silent := newFake(t)
	silent.silent = true
	port := serve(t, map[string]dns.Handler{"127.0.0.1": silent})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Minute}
	cause := errors.New("interrupted by SIGTERM")
	ctx, cancel := context.WithCancelCause(t.Context())
	time.AfterFunc(200*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	_, err := c.Observe(ctx, "example.test.", owner)
	if !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error wrapping the cause and context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want the cancellation to end the wait", d)
	}
}

func TestUnreachableServers(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	records := zone(5,
		"example.test. 3600 IN NS ns1.example.test.",
		"example.test. 3600 IN NS ns2.example.test.",
		"example.test. 3600 IN NS ns3.example.test.",
		"ns1.example.test. 3600 IN A 127.0.0.1",
		"ns2.example.test. 3600 IN A 127.0.0.9", // nothing listens there: port closed
		"ns3.example.test. 3600 IN A 127.0.0.3", // listens, never answers
		tl)
	silent := newFake(t)
	silent.silent = true
	port := serve(t, map[string]dns.Handler{"127.0.0.1": newFake(t, records...), "127.0.0.3": silent})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: 200 * time.Millisecond}

	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.9", "127.0.0.3"} {
		st := state(t, obs, addr(ip, port))
		if st.Reachable || st.Err == "" || st.OK() {
			t.Errorf("server %s: got reachable=%v err=%q, want unreachable with an error", ip, st.Reachable, st.Err)
		}
	}
	seen := &Seen{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seen.Update(obs, now)
	got := Age(obs, seen, rec(t, hexA), now.Add(24*time.Hour))
	if got.Aged || len(got.Blocking) != 2 {
		t.Fatalf("Age: got aged=%v blocking=%q, want not aged, 2 blockers", got.Aged, got.Blocking)
	}
	for i, want := range []string{"ns2.example.test. (127.0.0.9:", "ns3.example.test. (127.0.0.3:"} {
		if !strings.HasPrefix(got.Blocking[i], want) || !strings.Contains(got.Blocking[i], "unreachable") {
			t.Errorf("Blocking[%d]: got %q, want it to start with %q and say unreachable", i, got.Blocking[i], want)
		}
	}
}

func TestPrimaryUnreachableOrNotAuthoritative(t *testing.T) {
	lame := newFake(t, twoNS(1)...)
	lame.rcode = dns.RcodeRefused
	noAA := newFake(t, twoNS(1)...)
	noAA.noAA = true
	port := serve(t, map[string]dns.Handler{"127.0.0.1": lame, "127.0.0.3": noAA})
	for _, tc := range []struct {
		name, primary string
		notAuth       bool
	}{
		{"closed", addr("127.0.0.1", closedPort(t)), false},
		{"refused", addr("127.0.0.1", port), true},
		{"no AA", addr("127.0.0.3", port), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Primary: tc.primary, Timeout: 200 * time.Millisecond}
			_, err := c.Observe(t.Context(), "example.test.", owner)
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if got := errors.Is(err, ErrNotAuthoritative); got != tc.notAuth {
				t.Errorf("errors.Is(%v, ErrNotAuthoritative): got %v, want %v", err, got, tc.notAuth)
			}
			if !strings.Contains(err.Error(), `"example.test."`) {
				t.Errorf("error %q does not name the zone", err)
			}
		})
	}
}

func TestLaggingServer(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 "
	p := newFake(t, twoNS(12, tl+hexA, tl+hexB)...)
	s := newFake(t, twoNS(11, tl+hexA)...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}

	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	sec := state(t, obs, addr("127.0.0.2", port))
	if !sec.Lagging || sec.Serial != 11 || !sec.OK() {
		t.Fatalf("secondary: got lagging=%v serial=%d, want lagging at 11", sec.Lagging, sec.Serial)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seen := &Seen{}
	seen.Update(obs, now)
	// Even the record the secondary already serves is not aged while it lags.
	for _, h := range []string{hexA, hexB} {
		got := Age(obs, seen, rec(t, h), now.Add(time.Hour))
		want := fmt.Sprintf("ns2.example.test. (%s): lagging: serial 11, primary %s has 12", addr("127.0.0.2", port), c.Primary)
		if got.Aged || !slices.Contains(got.Blocking, want) {
			t.Errorf("Age(%.8s): got aged=%v blocking=%q, want not aged, blocked by %q", h, got.Aged, got.Blocking, want)
		}
	}
}

func TestNSWithSeveralAddresses(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	records := zone(2,
		"example.test. 3600 IN NS ns1.example.test.",
		"example.test. 3600 IN NS ns2.example.test.",
		"ns1.example.test. 3600 IN A 127.0.0.1",
		"ns1.example.test. 3600 IN AAAA ::1",
		"ns2.example.test. 3600 IN A 127.0.0.3",
		"ns2.example.test. 3600 IN A 127.0.0.4",
		tl)
	hs := map[string]dns.Handler{}
	for _, ip := range []string{"127.0.0.1", "::1", "127.0.0.3", "127.0.0.4"} {
		hs[ip] = newFake(t, records...)
	}
	port := serve(t, hs)
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}
	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ns1.example.test.=" + addr("127.0.0.1", port),
		"ns1.example.test.=" + addr("::1", port),
		"ns2.example.test.=" + addr("127.0.0.3", port),
		"ns2.example.test.=" + addr("127.0.0.4", port),
	}
	if got := names(obs); !slices.Equal(got, want) {
		t.Fatalf("servers: got %v, want %v", got, want)
	}
	for _, st := range obs.Servers {
		if !st.OK() || !st.Serves(rec(t, hexA)) {
			t.Errorf("server %s: got %+v, want it to serve the record", st.Addr, st)
		}
	}
}

func TestOutOfZoneNS(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	records := zone(2,
		"example.test. 3600 IN NS ns1.example.test.",
		"example.test. 3600 IN NS ns.other.test.",
		"ns1.example.test. 3600 IN A 127.0.0.1",
		tl)
	resolver := newFake(t, "ns.other.test. 300 IN A 127.0.0.5", "ns.other.test. 300 IN AAAA ::1")
	resolver.recursive = true
	p := newFake(t, records...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.5": newFake(t, records...), "::1": newFake(t, records...)})
	rport := serve(t, map[string]dns.Handler{"127.0.0.6": resolver})

	t.Run("via resolver", func(t *testing.T) {
		c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Resolver: addr("127.0.0.6", rport), Timeout: time.Second}
		obs, err := c.Observe(t.Context(), "example.test.", owner)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"ns.other.test.=" + addr("127.0.0.5", port),
			"ns.other.test.=" + addr("::1", port),
			"ns1.example.test.=" + addr("127.0.0.1", port),
		}
		if got := names(obs); !slices.Equal(got, want) {
			t.Fatalf("servers: got %v, want %v", got, want)
		}
		if n := resolver.rd.Load(); n != 2 {
			t.Errorf("resolver queries with RD: got %d, want 2 (A and AAAA)", n)
		}
		if n := p.rd.Load(); n != 0 {
			t.Errorf("primary queries with RD: got %d, want 0", n)
		}
	})
	t.Run("no resolver", func(t *testing.T) {
		c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}
		obs, err := c.Observe(t.Context(), "example.test.", owner)
		if err != nil {
			t.Fatal(err)
		}
		st := obs.Servers[0]
		if st.Name != "ns.other.test." || st.Addr != "" || !strings.Contains(st.Err, "configure a resolver") {
			t.Fatalf("unresolvable NS: got %+v, want no address and a hint to configure a resolver", st)
		}
		got := Age(obs, &Seen{}, rec(t, hexA), time.Now())
		if got.Aged || len(got.Blocking) != 1 || !strings.HasPrefix(got.Blocking[0], "ns.other.test.: no address") {
			t.Errorf("Age: got aged=%v blocking=%q, want blocked by ns.other.test.", got.Aged, got.Blocking)
		}
	})
}

func TestHiddenSecondaries(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	records := twoNS(4, tl, "stealth.example.test. 300 IN A 127.0.0.7")
	hs := map[string]dns.Handler{}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.7"} {
		hs[ip] = newFake(t, records...)
	}
	port := serve(t, hs)
	other := newFake(t, twoNS(3)...) // a hidden secondary on its own port, lagging, without the record
	oport := serve(t, map[string]dns.Handler{"127.0.0.8": other})
	c := &Checker{
		Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second,
		Hidden: []string{addr("127.0.0.8", oport), "127.0.0.2", "stealth.example.test"},
	}
	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ns1.example.test.=" + addr("127.0.0.1", port),
		"ns2.example.test.=" + addr("127.0.0.2", port), // the hidden duplicate is dropped
		"hidden=" + addr("127.0.0.8", oport),
		"hidden=" + addr("127.0.0.7", port),
	}
	if got := names(obs); !slices.Equal(got, want) {
		t.Fatalf("servers: got %v, want %v", got, want)
	}
	got := Age(obs, &Seen{}, rec(t, hexA), time.Now())
	if got.Aged || len(got.Blocking) != 1 || !strings.HasPrefix(got.Blocking[0], "hidden ("+addr("127.0.0.8", oport)+"): lagging: serial 3") {
		t.Errorf("Age: got blocking %q, want the lagging hidden secondary named", got.Blocking)
	}
}

func TestLameServer(t *testing.T) {
	tl := "_25._tcp.mail.example.test. 600 IN TLSA 3 1 1 " + hexA
	for _, tc := range []struct {
		name  string
		setup func(*fake)
		want  string
	}{
		{"refused", func(f *fake) { f.rcode = dns.RcodeRefused }, "server answered REFUSED"},
		{"servfail", func(f *fake) { f.rcode = dns.RcodeServerFailure }, "server answered SERVFAIL"},
		{"no AA", func(f *fake) { f.noAA = true }, "answer has no AA bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t, twoNS(4, tl)...)
			port := serve(t, map[string]dns.Handler{"127.0.0.1": newFake(t, twoNS(4, tl)...), "127.0.0.2": s})
			c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			seen := &Seen{}
			obs, err := c.Observe(t.Context(), "example.test.", owner)
			if err != nil {
				t.Fatal(err)
			}
			seen.Update(obs, now)
			if _, ok := seen.FirstSeen(owner, rec(t, hexA), addr("127.0.0.2", port)); !ok {
				t.Fatal("secondary not seen serving the record while healthy")
			}
			s.mu.Lock()
			tc.setup(s)
			s.mu.Unlock()
			obs, err = c.Observe(t.Context(), "example.test.", owner)
			if err != nil {
				t.Fatal(err)
			}
			st := state(t, obs, addr("127.0.0.2", port))
			if !st.Reachable || !strings.Contains(st.Err, tc.want) || len(st.Records) != 0 {
				t.Fatalf("lame server: got %+v, want reachable with error containing %q", st, tc.want)
			}
			seen.Update(obs, now.Add(time.Minute))
			if _, ok := seen.FirstSeen(owner, rec(t, hexA), addr("127.0.0.2", port)); ok {
				t.Error("lame secondary still remembered as serving the record")
			}
			if got := Age(obs, seen, rec(t, hexA), now.Add(time.Hour)); got.Aged || len(got.Blocking) != 1 {
				t.Errorf("Age: got aged=%v blocking=%q, want blocked by the lame server", got.Aged, got.Blocking)
			}
		})
	}
}

func TestNegativeTTL(t *testing.T) {
	for _, tc := range []struct {
		soaTTL, minimum, want uint32
	}{
		{3600, 300, 300},
		{60, 300, 60},
		{300, 300, 300},
		{0, 300, 0},
	} {
		s := &dns.SOA{Hdr: dns.RR_Header{Ttl: tc.soaTTL}, Minttl: tc.minimum}
		if got := NegativeTTL(s); got != tc.want {
			t.Errorf("NegativeTTL(TTL %d, MINIMUM %d): got %d, want %d", tc.soaTTL, tc.minimum, got, tc.want)
		}
	}
	// And as Observe reads it from the primary.
	records := []string{
		"example.test. 120 IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 900",
		"example.test. 3600 IN NS ns1.example.test.",
		"ns1.example.test. 3600 IN A 127.0.0.1",
	}
	port := serve(t, map[string]dns.Handler{"127.0.0.1": newFake(t, records...)})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second, TTL: 60}
	obs, err := c.Observe(t.Context(), "example.test.", owner)
	if err != nil {
		t.Fatal(err)
	}
	if obs.NegativeTTL != 120 || obs.ConfiguredTTL != 60 || obs.WaitTTL() != 120 {
		t.Errorf("got negative TTL %d, configured %d, wait %d; want 120, 60, 120", obs.NegativeTTL, obs.ConfiguredTTL, obs.WaitTTL())
	}
	if st := obs.Servers[0]; !st.OK() || len(st.Records) != 0 || st.TTL != 0 {
		t.Errorf("NXDOMAIN owner: got %+v, want reachable, no records, TTL 0", st)
	}
}

func TestObserveOwnerOutsideZone(t *testing.T) {
	c := &Checker{Primary: "127.0.0.1:1"}
	_, err := c.Observe(t.Context(), "example.test.", "_25._tcp.mail.example.org.")
	if err == nil || !strings.Contains(err.Error(), `"_25._tcp.mail.example.org."`) {
		t.Errorf("got %v, want an error naming the owner", err)
	}
}

func TestSplitHidden(t *testing.T) {
	for _, tc := range []struct {
		in       string
		host     string
		port     uint16
		wantErr  bool
		errMatch string
	}{
		{in: "192.0.2.1", host: "192.0.2.1", port: 53},
		{in: "192.0.2.1:5353", host: "192.0.2.1", port: 5353},
		{in: "2001:db8::1", host: "2001:db8::1", port: 53},
		{in: "[2001:db8::1]:5353", host: "2001:db8::1", port: 5353},
		{in: "ns.example.net", host: "ns.example.net", port: 53},
		{in: "ns.example.net:54", host: "ns.example.net", port: 54},
		{in: "", wantErr: true},
		{in: "192.0.2.1:0", wantErr: true, errMatch: "port"},
		{in: "192.0.2.1:99999", wantErr: true, errMatch: "port"},
		{in: "192.0.2.1:x", wantErr: true, errMatch: "port"},
		{in: ":53", wantErr: true},
		{in: "a:b:c", wantErr: true},
	} {
		host, port, err := splitHidden(tc.in, 53)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) || !strings.Contains(err.Error(), tc.errMatch) {
				t.Errorf("splitHidden(%q): got %q %d %v, want an error quoting the input (and %q)", tc.in, host, port, err, tc.errMatch)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("splitHidden(%q): got %q %d %v, want %q %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

func TestSerialBehind(t *testing.T) {
	for _, tc := range []struct {
		s, p uint32
		want bool
	}{
		{1, 2, true},
		{2, 2, false},
		{3, 2, false},
		{0xffffffff, 1, true}, // wrapped: 1 is newer (RFC 1982)
		{1, 0xffffffff, false},
		{2026010100, 2026010101, true},
	} {
		if got := serialBehind(tc.s, tc.p); got != tc.want {
			t.Errorf("serialBehind(%d, %d): got %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
}

func TestObservationJSONRoundTrip(t *testing.T) {
	obs := &Observation{
		Zone: "example.test.", Owner: owner, Primary: "127.0.0.1:53", PrimarySerial: 9, NegativeTTL: 300, ConfiguredTTL: 600,
		Servers: []ServerState{
			{Server: Server{Name: "ns1.example.test.", Addr: "127.0.0.1:53"}, Reachable: true, Serial: 9, Records: []tlsa.Record{rec(t, hexA), {Usage: 2, Selector: 0, MatchingType: 0}}, TTL: 600},
			{Server: Server{Name: "ns2.example.test.", Addr: "127.0.0.2:53", Err: "query … timeout"}},
		},
	}
	b, err := json.Marshal(obs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"records":["3 1 1 ` + hexA + `","2 0 0 "]`, `"records":[]`, `"primary_serial":9`, `"error":"query … timeout"`, `"name":"ns1.example.test."`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s does not contain %s", b, want)
		}
	}
	var back Observation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	obs.Servers[0].Records[1].Data = []byte{} // hex decoding gives empty, not nil
	if !reflect.DeepEqual(&back, obs) {
		t.Errorf("round trip: got %+v, want %+v", back, *obs)
	}
	if err := json.Unmarshal([]byte(`{"records":["3 1 x 00"]}`), &ServerState{}); err == nil {
		t.Error("bad record: got no error, want one")
	}
}

func TestWriteText(t *testing.T) {
	obs := &Observation{
		Zone: "example.test.", Owner: owner, Primary: "127.0.0.1:53", PrimarySerial: 9, NegativeTTL: 300,
		Servers: []ServerState{
			{Server: Server{Name: "ns1.example.test.", Addr: "127.0.0.1:53"}, Reachable: true, Serial: 9, Records: []tlsa.Record{rec(t, hexA)}, TTL: 600},
			{Server: Server{Name: "ns2.example.test.", Addr: "127.0.0.2:53"}, Reachable: true, Serial: 8, Lagging: true},
			{Server: Server{Name: "ns3.example.test.", Addr: "127.0.0.3:53", Err: "i/o timeout"}},
		},
	}
	var b strings.Builder
	if err := obs.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `owner _25._tcp.mail.example.test. (zone example.test.): primary 127.0.0.1:53 serial 9, negative TTL 300s
SERVER             ADDRESS       SERIAL  TTL  RECORDS          STATE
ns1.example.test.  127.0.0.1:53  9       600  3 1 1 0b9fa5a5…  ok
ns2.example.test.  127.0.0.2:53  8       -    -                lagging (primary 9)
ns3.example.test.  127.0.0.3:53  -       -    -                unreachable: i/o timeout
`
	if got := b.String(); got != want {
		t.Errorf("WriteText:\ngot\n%s\nwant\n%s", got, want)
	}
}

func FuzzParseServed(f *testing.F) {
	for _, s := range []string{"3 1 1 " + hexA, "2 0 0 ", "3 1 1 0B9F A5A5", "255 255 255 00", "3 1", "x 1 1 00", "3 1 1 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseServed(s)
		if err != nil {
			return
		}
		back, err := parseServed(r.String())
		if err != nil {
			t.Fatalf("parseServed(%q) = %v, but its String %q does not parse: %v", s, r, r.String(), err)
		}
		if !back.Equal(r) {
			t.Fatalf("round trip of %q: got %v, want %v", s, back, r)
		}
	})
}

func TestCheckerConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Checker
		want string
	}{
		{"no primary", Checker{}, "no primary server configured"},
		{"bad port", Checker{Primary: "127.0.0.1:53", Port: 70000}, "port 70000"},
		{"bad hidden", Checker{Primary: "127.0.0.1:53", Hidden: []string{"1.2.3.4:x"}}, `"1.2.3.4:x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "bad hidden" {
				port := serve(t, map[string]dns.Handler{"127.0.0.1": newFake(t, twoNS(1)...)})
				tc.c.Primary, tc.c.Port = addr("127.0.0.1", port), port
			}
			_, err := tc.c.Observe(t.Context(), "example.test.", owner)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Observe: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestObserveCancelled(t *testing.T) {
	silent := newFake(t)
	silent.silent = true
	p := newFake(t, twoNS(1)...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": silent})
	c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Observe(ctx, "example.test.", owner); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

func FuzzSplitHidden(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53", "2001:db8::1", "ns.example.net", "ns.example.net:54", "", ":53", "a:b:c", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := splitHidden(s, 53)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("splitHidden(%q): error %q does not quote the input", s, err)
			}
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("splitHidden(%q) = %q, %d: want a host and a port", s, host, port)
		}
	})
}
