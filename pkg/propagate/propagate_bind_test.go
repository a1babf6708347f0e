package propagate_test

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Integration tests against a real BIND primary (ns1, 127.0.0.1) and
// secondary (ns2, 127.0.0.2) on one port, started by internal/bindlab. They
// never sleep for TTLs: ageing is evaluated at explicit times.

const (
	labZone  = "example.test."
	labOwner = "_25._tcp.mail.example.test."
	labTTL   = 3 // seconds: records and negative caching
)

func labRecord(t *testing.T, b byte) tlsa.Record {
	t.Helper()
	d := make([]byte, 32)
	for i := range d {
		d[i] = b + byte(i)
	}
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: d}
}

func publish(t *testing.T, l *bindlab.Lab, r tlsa.Record) uint32 {
	t.Helper()
	l.Nsupdate(t, fmt.Sprintf("update add %s %d IN TLSA %d %d %d %s", labOwner, labTTL, r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data)))
	return l.Serial(t, l.Primary, labZone)
}

func checker(l *bindlab.Lab) *propagate.Checker {
	return &propagate.Checker{Primary: l.Primary, Port: l.Port, Timeout: 2 * time.Second}
}

// observeUntil observes until ok accepts the observation, for at most 10 s
// (the secondary transfers within milliseconds of the NOTIFY).
func observeUntil(t *testing.T, c *propagate.Checker, ok func(*propagate.Observation) bool) *propagate.Observation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs, err := c.Observe(t.Context(), labZone, labOwner)
		if err != nil {
			t.Fatal(err)
		}
		if ok(obs) {
			return obs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = obs.WriteText(&b)
			t.Fatalf("observation did not reach the expected state within 10 s:\n%s", b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allServe(r tlsa.Record) func(*propagate.Observation) bool {
	return func(o *propagate.Observation) bool {
		for _, s := range o.Servers {
			if !s.OK() || !s.Serves(r) || s.Lagging {
				return false
			}
		}
		return len(o.Servers) > 0
	}
}

func TestBindPublishedRecordAges(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: labTTL})
	c := checker(l)
	r := labRecord(t, 0x10)

	serial := publish(t, l, r)
	l.WaitSerial(t, l.Secondary, labZone, serial, 10*time.Second)
	obs := observeUntil(t, c, allServe(r))

	wantServers := []string{"ns1.example.test.=" + l.Primary, "ns2.example.test.=" + l.Secondary}
	var got []string
	for _, s := range obs.Servers {
		got = append(got, s.Name+"="+s.Addr)
		if s.Serial != serial || s.TTL != labTTL {
			t.Errorf("%s: got serial %d TTL %d, want %d %d", s.Addr, s.Serial, s.TTL, serial, labTTL)
		}
	}
	if !slices.Equal(got, wantServers) {
		t.Fatalf("servers: got %v, want %v", got, wantServers)
	}
	if obs.PrimarySerial != serial || obs.NegativeTTL != labTTL || obs.WaitTTL() != labTTL {
		t.Errorf("got primary serial %d, negative TTL %d, wait TTL %d; want %d %d %d", obs.PrimarySerial, obs.NegativeTTL, obs.WaitTTL(), serial, labTTL, labTTL)
	}

	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	var seen propagate.Seen
	seen.Update(obs, t0)
	agedAt := t0.Add(2 * labTTL * time.Second)
	if st := propagate.Age(obs, &seen, r, agedAt.Add(-time.Second)); st.Aged || !st.AgedAt.Equal(agedAt) || len(st.Blocking) != 0 {
		t.Errorf("one second early: got %v (aged at %v, blocking %q), want not aged, aged at %v", st.Aged, st.AgedAt, st.Blocking, agedAt)
	}
	if st := propagate.Age(obs, &seen, r, agedAt); !st.Aged || len(st.Serving) != 2 {
		t.Errorf("at last first-seen + 2×TTL: got %s (serving %v), want aged on both servers", st, st.Serving)
	}

	// A record that was never published is blocked by both servers.
	other := labRecord(t, 0x80)
	if st := propagate.Age(obs, &seen, other, agedAt); st.Aged || len(st.Blocking) != 2 {
		t.Errorf("unpublished record: got %s, want blocked by both servers", st)
	}

	// Removing the record makes the servers forget it; re-adding ages again.
	l.Nsupdate(t, fmt.Sprintf("update delete %s TLSA", labOwner))
	obs = observeUntil(t, c, func(o *propagate.Observation) bool {
		return !slices.ContainsFunc(o.Servers, func(s propagate.ServerState) bool { return s.Serves(r) || s.Lagging })
	})
	seen.Update(obs, t0.Add(time.Minute))
	if _, ok := seen.FirstSeen(labOwner, r, l.Primary); ok {
		t.Error("deleted record still remembered at the primary")
	}
	serial = publish(t, l, r)
	l.WaitSerial(t, l.Secondary, labZone, serial, 10*time.Second)
	obs = observeUntil(t, c, allServe(r))
	seen.Update(obs, t0.Add(2*time.Minute))
	if st := propagate.Age(obs, &seen, r, t0.Add(2*time.Minute+time.Second)); st.Aged || !st.AgedAt.Equal(t0.Add(2*time.Minute+2*labTTL*time.Second)) {
		t.Errorf("re-published record: got %s, want aged again from its return", st)
	}
}

func TestBindLaggingSecondaryBlocks(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: labTTL})
	c := checker(l)
	r := labRecord(t, 0x20)
	before := l.Serial(t, l.Secondary, labZone)

	l.BlockTransfers(t)
	serial := publish(t, l, r)
	obs, err := c.Observe(t.Context(), labZone, labOwner)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	var seen propagate.Seen
	seen.Update(obs, t0)
	st := propagate.Age(obs, &seen, r, t0.Add(time.Hour))
	want := fmt.Sprintf("ns2.example.test. (%s): lagging: serial %d, primary %s has %d", l.Secondary, before, l.Primary, serial)
	if st.Aged || !slices.Equal(st.Blocking, []string{want}) {
		t.Fatalf("while transfers are blocked: got %s, want blocked by %q", st, want)
	}
	if !slices.Equal(st.Serving, []string{l.Primary}) {
		t.Errorf("serving: got %v, want only the primary", st.Serving)
	}

	// Once the secondary catches up, the wait counts from when it was first
	// seen serving the record, not from the primary's first sighting.
	l.UnblockTransfers(t)
	l.WaitSerial(t, l.Secondary, labZone, serial, 10*time.Second)
	obs = observeUntil(t, c, allServe(r))
	t1 := t0.Add(90 * time.Second)
	seen.Update(obs, t1)
	st = propagate.Age(obs, &seen, r, t1.Add(2*labTTL*time.Second))
	if !st.Aged || !st.AgedAt.Equal(t1.Add(2*labTTL*time.Second)) || !st.LastSeen.Equal(t1) {
		t.Errorf("after catching up: got %s (last seen %v), want aged at %v", st, st.LastSeen, t1.Add(2*labTTL*time.Second))
	}
}

func TestBindUnreachableSecondaryBlocks(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: labTTL})
	c := checker(l)
	c.Timeout = 500 * time.Millisecond
	r := labRecord(t, 0x30)
	serial := publish(t, l, r)
	l.WaitSerial(t, l.Secondary, labZone, serial, 10*time.Second)
	obs := observeUntil(t, c, allServe(r))
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	var seen propagate.Seen
	seen.Update(obs, t0)

	l.StopSecondary(t)
	obs, err := c.Observe(t.Context(), labZone, labOwner)
	if err != nil {
		t.Fatal(err)
	}
	seen.Update(obs, t0.Add(time.Minute))
	st := propagate.Age(obs, &seen, r, t0.Add(time.Hour))
	prefix := "ns2.example.test. (" + l.Secondary + "): unreachable: "
	if st.Aged || len(st.Blocking) != 1 || !strings.HasPrefix(st.Blocking[0], prefix) {
		t.Fatalf("secondary stopped: got %s, want blocked by %q…", st, prefix)
	}
	if _, ok := seen.FirstSeen(labOwner, r, l.Secondary); !ok {
		t.Error("unreachable secondary's sighting was forgotten; want it kept until it answers")
	}
	var b strings.Builder
	if err := obs.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "unreachable") {
		t.Errorf("WriteText does not show the unreachable secondary:\n%s", b.String())
	}
}

func TestBindDNSSEC(t *testing.T) {
	t.Parallel()
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		l := bindlab.Start(t, bindlab.Options{TTL: labTTL})
		st, err := checker(l).DNSSEC(t.Context(), labZone)
		if err != nil {
			t.Fatal(err)
		}
		if st.Signed || st.Warning != propagate.WarningUnsigned {
			t.Errorf("got signed=%v warning %q, want unsigned with %q", st.Signed, st.Warning, propagate.WarningUnsigned)
		}
	})
	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		l := bindlab.Start(t, bindlab.Options{TTL: labTTL, Signed: true})
		c := checker(l)
		c.RequireDNSSEC = true
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := c.DNSSEC(t.Context(), labZone)
			if err == nil {
				if st.DNSKEYs == 0 || !st.SOASigned || st.Warning != "" || st.DS != propagate.Unknown {
					t.Errorf("got %+v, want signed, no warning, DS unknown (no resolver)", st)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("signed zone not detected within 10 s: %v (%+v)", err, st)
			}
			time.Sleep(100 * time.Millisecond) // named signs the zone just after loading it
		}
	})
}

// TestBindObserveOwnersMatchesObserve: ObserveOwners of 40 owners (their
// TLSA queries pipelined on one TCP connection per server) reports, owner by
// owner and server by server, what Observe of each owner alone (UDP) does —
// owners with one record, two records, none, and one whose secondary lags.
func TestBindObserveOwnersMatchesObserve(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: labTTL})
	var owners []string
	var script strings.Builder
	for i := 0; i < 40; i++ {
		o := fmt.Sprintf("_25._tcp.h%02d.example.test.", i)
		owners = append(owners, o)
		for j := 0; j < i%3; j++ { // 0, 1 or 2 records
			r := labRecord(t, byte(i*3+j))
			fmt.Fprintf(&script, "update add %s %d IN TLSA %s\n", o, labTTL, r)
		}
	}
	l.Nsupdate(t, script.String())
	l.WaitSerial(t, l.Secondary, labZone, l.Serial(t, l.Primary, labZone), 10*time.Second)
	l.BlockTransfers(t)
	l.Nsupdate(t, fmt.Sprintf("update add %s %d IN TLSA %s\n", owners[0], labTTL, labRecord(t, 200)))
	c := checker(l)
	many, err := c.ObserveOwners(t.Context(), labZone, owners)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range owners {
		one, err := c.Observe(t.Context(), labZone, o)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := describe(many[i]), describe(one); got != want {
			t.Errorf("owner %s:\nObserveOwners %s\nObserve       %s", o, got, want)
		}
	}
	if got := describe(many[0]); !strings.Contains(got, "lagging") {
		t.Errorf("owner %s: %s; want the secondary lagging", owners[0], got)
	}
}

// describe is what an observation says, server by server.
func describe(o *propagate.Observation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s serial %d:", o.Owner, o.PrimarySerial)
	for _, s := range o.Servers {
		fmt.Fprintf(&b, " [%s ok=%v serial=%d ttl=%d %v", s.Addr, s.OK(), s.Serial, s.TTL, s.Records)
		if s.Lagging {
			b.WriteString(" lagging")
		}
		b.WriteString("]")
	}
	return b.String()
}
