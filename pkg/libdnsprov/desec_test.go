package libdnsprov

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/internal/desecfake"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
	mdns "github.com/miekg/dns"
)

const desecToken = "desecTok-SECRET-9c1e77a0"

const dOwner = "_25._tcp.mail.example.com."

func desecSetup(t *testing.T) (*desecfake.Fake, *dnsupdate.Libdns) {
	t.Helper()
	f := desecfake.New(t, desecToken)
	f.AddDomain("example.com")
	f.Intercept(t)
	addr := apidns.Serve(t, f.DNS)
	return f, build(t, "desec", desecToken, addr, 5*time.Second)
}

// A current+next pair at one owner, a foreign record beside it, then the
// old key removed: each step read back by direct query, a rerun sends no
// write, and the foreign record survives.
func TestDesecPublishPairRemoveKeepsOthers(t *testing.T) {
	f, l := desecSetup(t)
	ctx := t.Context()
	foreign := tlsa.Record{Usage: 3, Selector: 0, MatchingType: 1, Data: make([]byte, 32)}
	f.Put("example.com", desecfake.RRset{Subname: "_25._tcp.mail", Type: "TLSA", TTL: 3600, Records: []string{"3 0 1 " + hex.EncodeToString(foreign.Data)}})
	cur, next := rec(t), rec(t)
	if err := l.Apply(ctx, []dnsupdate.Change{add(dOwner, 3600, cur)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, dOwner, foreign, cur)
	if err := l.Apply(ctx, []dnsupdate.Change{add(dOwner, 3600, cur), add(dOwner, 3600, next)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, dOwner, foreign, cur, next)
	puts := f.Requests("PUT")
	if err := l.Apply(ctx, []dnsupdate.Change{add(dOwner, 3600, cur), add(dOwner, 3600, next)}); err != nil {
		t.Fatal(err)
	}
	if n := f.Requests("PUT") - puts; n != 0 {
		t.Errorf("rerun sent %d PUT, want 0", n)
	}
	if err := l.Apply(ctx, []dnsupdate.Change{remove(dOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, dOwner, foreign, next)
	// The record deSEC stores is the canonical lower-case form danehook sent.
	got := f.RRset("example.com", "_25._tcp.mail", "TLSA")
	if got == nil || !strings.Contains(strings.Join(got.Records, ","), hex.EncodeToString(next.Data)) {
		t.Errorf("stored RRset %+v, want the next key in lower-case hex", got)
	}
	// Removing the last of ours and the foreign one leaves nothing; the RRset goes.
	if err := l.Apply(ctx, []dnsupdate.Change{remove(dOwner, next), remove(dOwner, foreign)}); err != nil {
		t.Fatal(err)
	}
	if got := f.RRset("example.com", "_25._tcp.mail", "TLSA"); got != nil {
		t.Errorf("RRset still stored: %+v", got)
	}
}

// Gap: deSEC keeps one TTL per RRset, at least the domain's minimum;
// libdns/desec sends max(ttl, 3600). A 300 s record is served at 3600 s,
// which is what danehook observes and ages by.
func TestDesecTTLIsPerRRsetAndAtLeastMinimum(t *testing.T) {
	_, l := desecSetup(t)
	r := rec(t)
	if err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 300, r)}); err != nil {
		t.Fatal(err)
	}
	got := served(t, l, dOwner)
	if len(got) != 1 || got[0].TTL != 3600 {
		t.Fatalf("got %v, want one record served at TTL 3600 (asked 300)", got)
	}
}

func TestDesecErrors(t *testing.T) {
	t.Run("bad token is auth", func(t *testing.T) {
		f, _ := desecSetup(t)
		l := build(t, "desec", "wrong-"+desecToken, apidns.Serve(t, f.DNS), 5*time.Second)
		err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderAuth, desecToken)
		if !strings.Contains(err.Error(), "Invalid token") || !strings.Contains(err.Error(), `zone "example.com."`) {
			t.Errorf("got %q, want deSEC's message and the zone", err)
		}
		var ae *dnsupdate.LibdnsApplyError
		if !errors.As(err, &ae) || len(ae.Applied) != 0 || len(ae.Failed) != 1 {
			t.Errorf("got %#v, want nothing applied, one change failed", err)
		}
	})
	t.Run("rate limit retried after Retry-After", func(t *testing.T) {
		f, l := desecSetup(t)
		f.FailNext(429, "1", 1)
		start := time.Now()
		r := rec(t)
		if err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, r)}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("took %s, want the 1 s Retry-After honoured", d)
		}
		assertServed(t, l, dOwner, r)
	})
	t.Run("rate limit beyond the timeout is unavailable", func(t *testing.T) {
		f, _ := desecSetup(t)
		l := build(t, "desec", desecToken, apidns.Serve(t, f.DNS), 300*time.Millisecond)
		f.FailNext(429, "30", 5)
		start := time.Now()
		err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderUnavailable, desecToken)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s, want the call cut at its timeout (0.6 s)", d)
		}
	})
	t.Run("validation error is request", func(t *testing.T) {
		f, l := desecSetup(t)
		f.SetMinimumTTL(7200)
		err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderRequest, desecToken)
		if !strings.Contains(err.Error(), "greater than or equal to 7200") {
			t.Errorf("got %q, want deSEC's validation message", err)
		}
		if got := f.RRset("example.com", "_25._tcp.mail", "TLSA"); got != nil {
			t.Errorf("a rejected bulk request stored %+v", got)
		}
	})
	t.Run("domain not in the account is zone", func(t *testing.T) {
		f, _ := desecSetup(t)
		// The name servers serve example.org, the account does not hold it.
		dns := func() map[string][]mdns.RR { m := f.DNS(); m["example.org."] = nil; return m }
		l := build(t, "desec", desecToken, apidns.Serve(t, dns), 5*time.Second)
		err := l.Apply(t.Context(), []dnsupdate.Change{add("_25._tcp.mail.example.org.", 3600, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderZone, desecToken)
	})
	t.Run("server error is unavailable", func(t *testing.T) {
		f, l := desecSetup(t)
		f.FailNext(503, "", 1)
		err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, rec(t))})
		assertClass(t, err, dnsupdate.ErrProviderUnavailable, desecToken)
	})
}

// Adds before removes across zones; a failure in the second zone's add
// reports the first zone's add as applied and the removes as not tried,
// and no remove was sent.
func TestDesecPartialProgress(t *testing.T) {
	f, _ := desecSetup(t)
	f.AddDomain("example.org")
	l := build(t, "desec", desecToken, apidns.Serve(t, f.DNS), 5*time.Second)
	oOwner := "_25._tcp.mail.example.org."
	old := rec(t)
	if err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, old)}); err != nil {
		t.Fatal(err)
	}
	f.OnRequest(func(method, path string) {
		if method == "PUT" && strings.Contains(path, "example.org") {
			f.FailNext(500, "", 1)
		}
	})
	a, b := rec(t), rec(t)
	err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, a), add(oOwner, 3600, b), remove(dOwner, old)})
	var ae *dnsupdate.LibdnsApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want *LibdnsApplyError", err)
	}
	if len(ae.Applied) != 1 || !ae.Applied[0].Record.Equal(a) || len(ae.Failed) != 1 || !ae.Failed[0].Record.Equal(b) ||
		len(ae.Pending) != 1 || !ae.Pending[0].Record.Equal(old) {
		t.Fatalf("got applied %v failed %v pending %v, want a applied, b failed, the remove pending", ae.Applied, ae.Failed, ae.Pending)
	}
	if !errors.Is(err, dnsupdate.ErrProviderUnavailable) || !strings.Contains(err.Error(), "applied 1 of 3 changes") {
		t.Errorf("got %q", err)
	}
	assertServed(t, l, dOwner, old, a)
	f.OnRequest(nil)
	// Sending the same plan again completes it.
	if err := l.Apply(t.Context(), []dnsupdate.Change{add(dOwner, 3600, a), add(oOwner, 3600, b), remove(dOwner, old)}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, l, dOwner, a)
	assertServed(t, l, oOwner, b)
}

// The ownership registry through libdns/desec: claims are one TXT RRset at
// the registry name (libdns/desec quotes the text for deSEC), read back by
// direct query; a rerun sends nothing; removing one claim keeps the
// other's; ApplyClaimed keeps a removal another host claims.
func TestDesecClaims(t *testing.T) {
	f, l := desecSetup(t)
	ctx := t.Context()
	r1, r2 := rec(t), rec(t)
	a := dnsupdate.Claim{Owner: dOwner, Host: "mx1", Record: r1}
	b := dnsupdate.Claim{Owner: dOwner, Host: "mx2", Record: r2}
	if err := l.ApplyClaims(ctx, 3600, []dnsupdate.Claim{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := l.Claims(ctx, dOwner)
	if err != nil || len(got) != 2 || got[0].Text() != a.Text() || got[1].Text() != b.Text() {
		t.Fatalf("Claims = %v, %v; want %v and %v", got, err, a, b)
	}
	n := len(f.Log())
	if err := l.ApplyClaims(ctx, 3600, []dnsupdate.Claim{a}, nil); err != nil || len(f.Log()) != n {
		t.Fatalf("rerun: %v, %d requests; want none", err, len(f.Log())-n)
	}
	if err := l.Apply(ctx, []dnsupdate.Change{add(dOwner, 3600, r1), add(dOwner, 3600, r2)}); err != nil {
		t.Fatal(err)
	}
	conflicts, err := l.ApplyClaimed(ctx, "mx1", []dnsupdate.Change{remove(dOwner, r1), remove(dOwner, r2)})
	if err != nil || len(conflicts) != 1 || !conflicts[0].Change.Record.Equal(r2) {
		t.Fatalf("ApplyClaimed = %v, %v; want r2 kept for mx2", conflicts, err)
	}
	assertServed(t, l, dOwner, r2)
	if err := l.ApplyClaims(ctx, 3600, nil, []dnsupdate.Claim{a}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Claims(ctx, dOwner); len(got) != 1 || got[0].Host != "mx2" {
		t.Fatalf("after removing mx1's claim: %v", got)
	}
}
