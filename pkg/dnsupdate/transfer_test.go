package dnsupdate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/miekg/dns"
)

// TestTransferZoneShapes: on a real BIND primary, every owner the zone's
// transfer can tell reads exactly what a direct TLSA query reads (records
// and TTL), and every owner whose answer the copy cannot predict — below a
// delegation, at a delegation, below a DNAME, a CNAME, a missing name under
// a wildcard — is left to the direct query (Lookup false). The query count
// shows that FindZone places owners of the transferred zone without
// asking, and still asks for one below the delegation.
func TestTransferZoneShapes(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test."}, TTL: 300})
	l.Nsupdate(t, `zone example.test.
update add _25._tcp.mail.example.test. 300 IN TLSA 3 1 1 `+hex32(0x11)+`
update add _25._tcp.mail.example.test. 300 IN TLSA 2 1 1 `+hex32(0x12)+`
update add _25._tcp.mx2.example.test. 3600 IN TLSA 3 1 1 `+hex32(0x13)+`
update add mx3.example.test. 300 IN A 127.0.0.1
update add _25._tcp.alias.example.test. 300 IN CNAME _25._tcp.mail.example.test.
update add deleg.example.test. 300 IN NS ns.deleg.example.test.
update add ns.deleg.example.test. 300 IN A 127.0.0.9
update add _25._tcp.mx.deleg.example.test. 300 IN TLSA 3 1 1 `+hex32(0x14)+`
update add *.wild.example.test. 300 IN TLSA 3 1 1 `+hex32(0x15)+`
update add _25._tcp.x.wild.example.test. 300 IN TLSA 3 1 1 `+hex32(0x16)+`
update add dn.example.test. 300 IN DNAME example.test.
send
`)
	p := labProvider(t, l)
	ctx := t.Context()
	z, err := p.TransferZone(ctx, "", "Example.Test", 0)
	if err != nil {
		t.Fatalf("TransferZone: %v", err)
	}
	if z.Name != "example.test." || z.SOA == nil || z.Server != l.Primary || z.Records < 12 {
		t.Fatalf("copy: name %q, SOA %v, server %q, %d records", z.Name, z.SOA, z.Server, z.Records)
	}
	tells := []string{
		"_25._tcp.mail.example.test.",
		"_25._TCP.MAIL.example.test.", // names compare case-insensitively (RFC 4343)
		"_25._tcp.mx2.example.test.",
		"_25._tcp.mx3.example.test.",    // no such name, no wildcard above: NXDOMAIN
		"mx3.example.test.",             // a name without TLSA: NODATA
		"_tcp.mail.example.test.",       // an empty non-terminal
		"_25._tcp.x.wild.example.test.", // exists: the wildcard does not apply
		"dn.example.test.",              // the DNAME's own name is not redirected
	}
	for _, o := range tells {
		got, ok := z.Lookup(o)
		if !ok {
			t.Errorf("Lookup(%s): the copy cannot tell; want the RRset", o)
			continue
		}
		want, err := p.Records(ctx, o)
		if err != nil {
			t.Fatalf("Records(%s): %v", o, err)
		}
		if g, w := rrText(got), rrText(want); !slices.Equal(g, w) {
			t.Errorf("Lookup(%s) = %q; the direct query reads %q", o, g, w)
		}
	}
	for _, o := range []string{
		"_25._tcp.mx.deleg.example.test.", // below a delegation: another zone's data
		"deleg.example.test.",             // the delegation point itself
		"_25._tcp.alias.example.test.",    // a CNAME
		"_25._tcp.y.wild.example.test.",   // synthesized from *.wild
		"_25._tcp.mx.dn.example.test.",    // below the DNAME
		"_25._tcp.mail.example.org.",      // outside the zone
	} {
		if got, ok := z.Lookup(o); ok {
			t.Errorf("Lookup(%s) = %v, true; want false (the copy cannot predict a direct query)", o, got)
		}
	}
	if got, err := p.Records(ctx, "_25._tcp.y.wild.example.test."); err != nil || len(got) != 1 {
		t.Errorf("the direct query at a name under *.wild: %v, %v; want the synthesized record", got, err)
	}
	before := p.Sent().Queries
	for _, o := range []string{"_25._tcp.mail.example.test.", "_25._tcp.new.example.test."} {
		if zone, err := p.FindZone(ctx, o); err != nil || zone != "example.test." {
			t.Errorf("FindZone(%s) = %q, %v", o, zone, err)
		}
	}
	if n := p.Sent().Queries - before; n != 0 {
		t.Errorf("FindZone of owners the transferred zone holds sent %d queries, want 0", n)
	}
	if _, err := p.FindZone(ctx, "_25._tcp.mx.deleg.example.test."); p.Sent().Queries == before {
		t.Errorf("FindZone below the delegation asked nothing (%v): the copy does not hold that name", err)
	}
}

// TestTransferZoneRefused: a transfer the server refuses — unsigned, with a
// key it does not allow, with a key it does not know — and one beyond the
// caller's record limit are errors naming the zone and the server, never
// the secret, and nothing is remembered for FindZone.
func TestTransferZoneRefused(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{ExtraKeys: []bindlab.ExtraKey{{Name: "other"}}})
	ctx := t.Context()
	good := labProvider(t, l)
	other, err := LoadTSIGKeyFile(l.Keys["other."].File)
	if err != nil {
		t.Fatal(err)
	}
	unknown := &TSIGKey{Name: "nosuchkey.", Algorithm: "hmac-sha256", Secret: good.Key.Secret}
	for _, tc := range []struct {
		name string
		key  *TSIGKey
		want string
	}{
		{"unsigned", nil, "REFUSED"},
		{"key not allowed", other, "REFUSED"},
		{"unknown key", unknown, "TSIG"},
	} {
		p := &RFC2136{Server: l.Primary, Key: tc.key, Timeout: good.Timeout}
		_, err := p.TransferZone(ctx, "", "example.test.", 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "example.test.") || !strings.Contains(err.Error(), l.Primary) {
			t.Errorf("%s: got %v; want an error saying %q, naming the zone and %s", tc.name, err, tc.want, l.Primary)
		}
		for _, k := range []*TSIGKey{good.Key, other} {
			if err != nil && strings.Contains(err.Error(), k.Secret) {
				t.Errorf("%s: the error holds a secret", tc.name)
			}
		}
		if p.transferredZone("_25._tcp.mail.example.test.") != "" {
			t.Errorf("%s: a failed transfer was remembered for FindZone", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
	}
	_, err = good.TransferZone(ctx, "", "example.test.", 1)
	if !errors.Is(err, ErrTransferTooLarge) {
		t.Errorf("limit 1: got %v, want ErrTransferTooLarge", err)
	}
	if good.transferredZone("_25._tcp.mail.example.test.") != "" {
		t.Error("an abandoned transfer was remembered for FindZone")
	}
	// The secondary of the lab allows no transfer (BIND's allow-transfer
	// { none; }): the copy asked there is refused too.
	if _, err := good.TransferZone(ctx, l.Secondary, "example.test.", 0); err == nil || !strings.Contains(err.Error(), l.Secondary) {
		t.Errorf("from the secondary: got %v, want a refusal naming %s", err, l.Secondary)
	}
}

func hex32(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), 32) }

// rrText is rrs in presentation form with their TTLs, sorted.
func rrText(rrs []RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, fmt.Sprintf("%d %s", rr.TTL, rr.Record))
	}
	slices.Sort(out)
	return out
}

// TestUnder: the suffix test agrees with dns.IsSubDomain on label
// boundaries, the root, equal names and escaped dots.
func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		zone, name string
		want       bool
	}{
		{"example.test.", "example.test.", true},
		{"example.test.", "_25._tcp.mail.example.test.", true},
		{"example.test.", "badexample.test.", false},
		{"example.test.", "test.", false},
		{".", "example.test.", true},
		{"example.test.", `a\.example.test.`, false}, // one label "a.example"
		{"test.", `mail\.example.test.`, true},
		{`b\.example.test.`, `a.b\.example.test.`, true},
		{`b\.example.test.`, `a.b.example.test.`, false},
	} {
		if got := under(tc.zone, tc.name); got != tc.want || got != dns.IsSubDomain(tc.zone, tc.name) {
			t.Errorf("under(%q, %q) = %t, want %t (dns.IsSubDomain: %t)", tc.zone, tc.name, got, tc.want, dns.IsSubDomain(tc.zone, tc.name))
		}
	}
}
