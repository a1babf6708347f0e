package libdnsprov

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/internal/hetznerfake"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/libdns/hetzner"
	"github.com/libdns/libdns"
	mdns "github.com/miekg/dns"
)

const hetznerToken = "hzTok-SECRET-5b2f0c11"

const hOwner = "_25._tcp.mail.example.com."

func hetznerSetup(t *testing.T) (*hetznerfake.Fake, *dnsupdate.Libdns) {
	t.Helper()
	f := hetznerfake.New(t, hetznerToken)
	f.AddZone("example.com")
	f.Intercept(t)
	return f, build(t, "hetzner", hetznerToken, apidns.Serve(t, f.DNS), 5*time.Second)
}

func tlsaValue(r tlsa.Record) string {
	return strings.ToUpper(r.String()[:6]) + hex.EncodeToString(r.Data)
}

// H1 fixed: with a current+next pair, removing the current key removes
// that one (upstream would pick the first TLSA at the name), a foreign
// record survives, a rerun sends nothing.
func TestHetznerPairRemoveKeepsOthers(t *testing.T) {
	f, l := hetznerSetup(t)
	ctx := t.Context()
	foreign := tlsa.Record{Usage: 3, Selector: 0, MatchingType: 1, Data: make([]byte, 32)}
	f.AddRecord("example.com", hetznerfake.Record{Type: "TLSA", Name: "_25._tcp.mail", Value: tlsaValue(foreign), TTL: 300})
	cur, next := rec(t), rec(t)
	if err := l.Apply(ctx, []dnsupdate.Change{add(hOwner, 300, cur), add(hOwner, 300, next)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, hOwner, foreign, cur, next)
	posts := f.Requests("POST")
	if err := l.Apply(ctx, []dnsupdate.Change{add(hOwner, 300, cur), add(hOwner, 300, next)}); err != nil {
		t.Fatal(err)
	}
	if n := f.Requests("POST") - posts; n != 0 {
		t.Errorf("rerun sent %d POST, want 0 (a second POST would store a duplicate)", n)
	}
	if err := l.Apply(ctx, []dnsupdate.Change{remove(hOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, hOwner, foreign, next)
	if got := served(t, l, hOwner); got[0].TTL != 300 {
		t.Errorf("served TTL %d, want 300", got[0].TTL)
	}
}

// The gap H1 in libdns/hetzner v1.0.0 itself: DeleteRecords of the next
// key deletes whichever TLSA at the name comes first. If a later version
// matches the value, this test fails: drop the adapter's DeleteRecords.
func TestHetznerUpstreamDeletesWrongRecord(t *testing.T) {
	f, _ := hetznerSetup(t)
	cur, next := rec(t), rec(t)
	f.AddRecord("example.com", hetznerfake.Record{Type: "TLSA", Name: "_25._tcp.mail", Value: "3 1 1 " + hex.EncodeToString(cur.Data), TTL: 300})
	f.AddRecord("example.com", hetznerfake.Record{Type: "TLSA", Name: "_25._tcp.mail", Value: "3 1 1 " + hex.EncodeToString(next.Data), TTL: 300})
	up := hetzner.New(hetznerToken)
	_, err := up.DeleteRecords(t.Context(), "example.com.", []libdns.Record{libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", Data: "3 1 1 " + hex.EncodeToString(next.Data)}})
	if err != nil {
		t.Fatal(err)
	}
	left := f.Records("example.com")
	if len(left) != 1 || !strings.Contains(left[0].Value, hex.EncodeToString(next.Data)) {
		t.Fatalf("left %+v: upstream no longer deletes the wrong record; remove the adapter (H1)", left)
	}
}

// H2: a removal already done is no error (upstream: "record ID not found").
func TestHetznerRemoveGoneIsNoop(t *testing.T) {
	f, l := hetznerSetup(t)
	r := rec(t)
	if err := l.Provider.(*hetznerAdapter).deleteOnly(t, r); err != nil {
		t.Fatalf("adapter delete of a missing record: %v", err)
	}
	up := hetzner.New(hetznerToken)
	_, err := up.DeleteRecords(t.Context(), "example.com.", []libdns.Record{libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", Data: r.String()}})
	if err == nil || !strings.Contains(err.Error(), "record ID not found") {
		t.Fatalf("upstream: got %v, want \"record ID not found\" (H2); if fixed, simplify the adapter", err)
	}
	if n := f.Requests("DELETE"); n != 0 {
		t.Errorf("%d DELETE sent", n)
	}
}

func (a *hetznerAdapter) deleteOnly(t *testing.T, r tlsa.Record) error {
	_, err := a.DeleteRecords(t.Context(), "example.com.", []libdns.Record{libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", Data: r.String()}})
	return err
}

// H3: a zone list answered empty panics upstream; the adapter reports the
// zone as not in the account.
func TestHetznerEmptyZoneListIsZoneError(t *testing.T) {
	f, _ := hetznerSetup(t)
	f.AnswerUnknownZoneEmpty()
	dns := func() map[string][]mdns.RR { m := f.DNS(); m["example.org."] = nil; return m }
	l := build(t, "hetzner", hetznerToken, apidns.Serve(t, dns), 5*time.Second)
	err := l.Apply(t.Context(), []dnsupdate.Change{add("_25._tcp.mail.example.org.", 300, rec(t))})
	assertClass(t, err, dnsupdate.ErrProviderZone, hetznerToken)
	if !strings.Contains(err.Error(), `zone "example.org." is not in the Hetzner DNS account`) {
		t.Errorf("got %q", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("upstream AppendRecords did not panic on an empty zone list (H3): drop the recover")
			}
		}()
		_, _ = hetzner.New(hetznerToken).AppendRecords(t.Context(), "example.org.", []libdns.Record{libdns.RR{Name: "x", Type: "TLSA", Data: "3 1 1 00"}})
	}()
}

func TestHetznerErrors(t *testing.T) {
	t.Run("bad token is auth", func(t *testing.T) {
		f, _ := hetznerSetup(t)
		l := build(t, "hetzner", "wrong-"+hetznerToken, apidns.Serve(t, f.DNS), 5*time.Second)
		err := l.Apply(t.Context(), []dnsupdate.Change{add(hOwner, 300, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderAuth, hetznerToken)
		if !strings.Contains(err.Error(), "Unauthorized (401)") {
			t.Errorf("got %q", err)
		}
	})
	t.Run("rate limit is unavailable", func(t *testing.T) {
		f, l := hetznerSetup(t)
		f.FailNext(429, "5", 1)
		err := l.Apply(t.Context(), []dnsupdate.Change{add(hOwner, 300, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderUnavailable, hetznerToken)
		var le *dnsupdate.LibdnsError
		if !errors.As(err, &le) || le.Status != 429 || !strings.Contains(le.Hint(), "rate-limits") {
			t.Errorf("got %#v, want status 429 and the rate-limit hint", le)
		}
	})
	t.Run("invalid record is request", func(t *testing.T) {
		f, l := hetznerSetup(t)
		bad := rec(t)
		bad.Usage = 9
		err := l.Apply(t.Context(), []dnsupdate.Change{add(hOwner, 300, bad)})
		assertClass(t, err, dnsupdate.ErrProviderRequest, hetznerToken)
		if len(f.Records("example.com")) != 0 {
			t.Error("a rejected record was stored")
		}
	})
	t.Run("second of two creates fails: first reported applied", func(t *testing.T) {
		f, l := hetznerSetup(t)
		a, b := rec(t), rec(t)
		// zone lookup + POST for a succeed; the zone lookup for b fails.
		l.Provider = failAfter{LibdnsProvider: l.Provider, f: f}
		err := l.Apply(t.Context(), []dnsupdate.Change{add(hOwner, 300, a), add(hOwner, 300, b)})
		var ae *dnsupdate.LibdnsApplyError
		if !errors.As(err, &ae) || len(ae.Applied) != 1 || !ae.Applied[0].Record.Equal(a) || len(ae.Failed) != 1 || !ae.Failed[0].Record.Equal(b) {
			t.Fatalf("got %v, want a applied and b failed", err)
		}
		assertServed(t, l, hOwner, a)
	})
}

// failAfter arms the fake to fail the third request (a's zone lookup and
// POST pass, b's zone lookup fails) when AppendRecords starts.
type failAfter struct {
	dnsupdate.LibdnsProvider
	f *hetznerfake.Fake
}

func (p failAfter) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.f.FailAfter(2, 503)
	return p.LibdnsProvider.AppendRecords(ctx, zone, recs)
}

// The ownership registry through the Hetzner adapter: claims are TXT
// records created by upstream's AppendRecords (stored unquoted, served by
// the fake's name servers as one string per word, which the reader joins
// again), read by direct query, and removed by the adapter's value match;
// a rerun sends nothing; ApplyClaimed keeps a removal another host claims.
func TestHetznerClaims(t *testing.T) {
	f, l := hetznerSetup(t)
	ctx := t.Context()
	r1, r2 := rec(t), rec(t)
	a := dnsupdate.Claim{Owner: hOwner, Host: "mx1", Record: r1}
	b := dnsupdate.Claim{Owner: hOwner, Host: "mx2", Record: r2}
	if err := l.ApplyClaims(ctx, 300, []dnsupdate.Claim{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := l.Claims(ctx, hOwner)
	if err != nil || len(got) != 2 || got[0].Text() != a.Text() || got[1].Text() != b.Text() {
		t.Fatalf("Claims = %v, %v; want %v and %v", got, err, a, b)
	}
	posts, deletes := f.Requests("POST"), f.Requests("DELETE")
	if err := l.ApplyClaims(ctx, 300, []dnsupdate.Claim{a}, nil); err != nil || f.Requests("POST") != posts {
		t.Fatalf("rerun: %v, %d POST; want none", err, f.Requests("POST")-posts)
	}
	if err := l.Apply(ctx, []dnsupdate.Change{add(hOwner, 300, r1), add(hOwner, 300, r2)}); err != nil {
		t.Fatal(err)
	}
	conflicts, err := l.ApplyClaimed(ctx, "mx1", []dnsupdate.Change{remove(hOwner, r1), remove(hOwner, r2)})
	if err != nil || len(conflicts) != 1 || !conflicts[0].Change.Record.Equal(r2) {
		t.Fatalf("ApplyClaimed = %v, %v; want r2 kept for mx2", conflicts, err)
	}
	assertServed(t, l, hOwner, r2)
	if err := l.ApplyClaims(ctx, 300, nil, []dnsupdate.Claim{a}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Claims(ctx, hOwner); len(got) != 1 || got[0].Host != "mx2" {
		t.Fatalf("after removing mx1's claim: %v", got)
	}
	if f.Requests("DELETE") != deletes+2 {
		t.Errorf("%d DELETE, want 2 (r1, then mx1's claim)", f.Requests("DELETE")-deletes)
	}
}
