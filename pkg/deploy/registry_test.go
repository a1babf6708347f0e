package deploy

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestDecideRemovalsRespectsClaims: an owned record this host no longer
// wants is removed only when no other host claims it in the registry.
func TestDecideRemovalsRespectsClaims(t *testing.T) {
	ca := newCA(t)
	old := memChain(t, ca, nil, 0)
	cur := memChain(t, ca, nil, time.Hour)
	oldRec, curRec := rec311(t, old), rec311(t, cur)
	claim := func(host string, r tlsa.Record) dnsupdate.Claim {
		return dnsupdate.Claim{Owner: tOwner, Host: host, Record: r}
	}
	for _, tc := range []struct {
		name    string
		me      string
		claims  []dnsupdate.Claim
		retired bool
		removed bool
		says    string
	}{
		{name: "no registry: removed", removed: true},
		{name: "only my claim: removed", me: "mx1", claims: []dnsupdate.Claim{claim("mx1", oldRec)}, removed: true},
		{name: "another host claims it: held", me: "mx1", claims: []dnsupdate.Claim{claim("mx1", curRec), claim("mx2", oldRec)}, says: "host mx2 still serves"},
		{name: "two others claim it: held, both named", me: "mx1", claims: []dnsupdate.Claim{claim("mx3", oldRec), claim("mx2", oldRec)}, says: "host mx2, mx3"},
		{name: "another host claims another record: removed", me: "mx1", claims: []dnsupdate.Claim{claim("mx2", curRec)}, removed: true},
		{name: "claims are honoured without host_id of my own", claims: []dnsupdate.Claim{claim("mx2", oldRec)}, says: "host mx2"},
		{name: "retired owner: claimed record held", me: "mx1", retired: true, claims: []dnsupdate.Claim{claim("mx2", oldRec)}, says: "host mx2"},
		{name: "retired owner: unclaimed removed", me: "mx1", retired: true, removed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := world(t, cur, 60, []servedRec{{rec: oldRec, since: time.Hour}, {rec: curRec, since: time.Hour}}, nil)
			s.HostID = tc.me
			ov := s.owner(tOwner)
			ov.Claims = tc.claims
			s.DNS.own(tOwner, oldRec, "lab")
			s.DNS.own(tOwner, curRec, "lab")
			want := []tlsa.Record{curRec}
			if tc.retired {
				ov.Lineages, want = nil, nil
				s.Lineages = nil
			}
			remove, held := decideRemovals(s, ov, want, map[string]*chain.Chain{}, map[string]string{}, nil)
			if got := containsRR(remove, oldRec); got != tc.removed {
				t.Fatalf("old record removed = %v, want %v (held %v)", got, tc.removed, held)
			}
			if tc.says != "" {
				text := ""
				for _, h := range held {
					if h.RR.Record.Equal(oldRec) {
						text = h.Reason
					}
				}
				if !strings.Contains(text, tc.says) || !strings.Contains(text, "_danehook."+tOwner) {
					t.Errorf("held reason %q, want it to say %q and name the registry", text, tc.says)
				}
			}
		})
	}
}

func TestClaimChanges(t *testing.T) {
	a, b, c := fakeRec(t, 1), fakeRec(t, 2), fakeRec(t, 3)
	ov := &ownerView{Owner: tOwner, Current: []dnsupdate.RR{{Record: a}, {Record: b}}, Claims: []dnsupdate.Claim{
		{Owner: tOwner, Host: "mx1", Record: a}, {Owner: tOwner, Host: "mx1", Record: c}, {Owner: tOwner, Host: "mx2", Record: b},
	}}
	// mx1 wants a and b (both served): it claims b, keeps a, drops c.
	add, remove := claimChanges(ov, "mx1", []tlsa.Record{a, b})
	if len(add) != 1 || !add[0].Record.Equal(b) || add[0].Host != "mx1" || len(remove) != 1 || !remove[0].Record.Equal(c) {
		t.Errorf("claimChanges = +%v -%v, want +b -c", add, remove)
	}
	// A wanted record not served yet is not claimed yet; mx2's claims are not mx1's to drop.
	add, remove = claimChanges(ov, "mx1", []tlsa.Record{a, c})
	if len(add) != 0 || len(remove) != 0 {
		t.Errorf("claimChanges = +%v -%v, want none", add, remove)
	}
}

func TestParseClaimRoundTrip(t *testing.T) {
	c := dnsupdate.Claim{Owner: tOwner, Host: "mx1.example", Record: fakeRec(t, 9)}
	got, ok := dnsupdate.ParseClaim(tOwner, c.Text())
	if !ok || got.Host != c.Host || !got.Record.Equal(c.Record) || got.Owner != tOwner {
		t.Fatalf("ParseClaim(%q) = %+v, %v", c.Text(), got, ok)
	}
	for _, bad := range []string{"v=spf1 -all", "danehook-claim host= tlsa=3 1 1 00", "danehook-claim host=mx1 tlsa=3 1 1 zz", "danehook-claim host=mx1"} {
		if _, ok := dnsupdate.ParseClaim(tOwner, bad); ok {
			t.Errorf("ParseClaim(%q) ok, want not a claim", bad)
		}
	}
}

// TestUnmatchedSparesPinnedAndClaimed: prune never takes a record an issuer
// set pins ahead or another host claims, even when danehook does not own it.
func TestUnmatchedSparesPinnedAndClaimed(t *testing.T) {
	caA, caB := newCA(t), newCA(t)
	cur := taOf(memChain(t, caA, nil, 0))
	stray, claimed := fakeRec(t, 1), fakeRec(t, 2)
	s, lv := world(t, cur, 60, []servedRec{{rec: rec211(t, caB), since: time.Hour}, {rec: stray, since: time.Hour}, {rec: claimed, since: time.Hour}}, nil)
	s.Now = time.Now()
	lv.L.Usages, lv.L.TA = []string{"2 1 1"}, chain.TAIssuerSet
	lv.IssuerSet = &chain.IssuerSet{Source: "set", Certs: []*x509.Certificate{caA.cert, caB.cert}}
	s.HostID = "mx1"
	s.owner(tOwner).Claims = []dnsupdate.Claim{{Owner: tOwner, Host: "mx2", Record: claimed}}
	got := unmatched(s, s.owner(tOwner))
	if len(got) != 1 || !got[0].Equal(stray) {
		t.Errorf("unmatched = %v, want only the stray record %v", got, stray)
	}
}
