package deploy

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
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
	// Claim first: a wanted record not served yet is claimed before it is
	// published; mx2's claims are not mx1's to drop.
	d := fakeRec(t, 4)
	add, remove = claimChanges(ov, "mx1", []tlsa.Record{a, c, d})
	if len(add) != 1 || !add[0].Record.Equal(d) || len(remove) != 0 {
		t.Errorf("claimChanges = +%v -%v, want +d", add, remove)
	}
	// mx1 wants nothing here any more: both its claims go, mx2's stays.
	add, remove = claimChanges(ov, "mx1", nil)
	if len(add) != 0 || len(remove) != 2 {
		t.Errorf("claimChanges = +%v -%v, want -a -c", add, remove)
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

// memRegistry is an in-memory Publisher and Registry for the engine's
// handling of what ApplyClaimed returns: conflicts and err are returned
// for every call; served is what Records reads.
type memRegistry struct {
	served    []dnsupdate.RR
	claims    []dnsupdate.Claim
	conflicts func(changes []dnsupdate.Change) []dnsupdate.Conflict
	err       error
	applied   []dnsupdate.Change
	plain     int // Apply calls
}

func (m *memRegistry) FindZone(context.Context, string) (string, error) { return "example.test.", nil }
func (m *memRegistry) Records(context.Context, string) ([]dnsupdate.RR, error) {
	return m.served, nil
}
func (m *memRegistry) Apply(_ context.Context, cs []dnsupdate.Change) error {
	m.plain++
	return m.err
}
func (m *memRegistry) Claims(context.Context, string) ([]dnsupdate.Claim, error) {
	return m.claims, nil
}
func (m *memRegistry) ApplyClaims(_ context.Context, _ uint32, add, remove []dnsupdate.Claim) error {
	m.claims = append(m.claims, add...)
	return nil
}
func (m *memRegistry) ApplyClaimed(_ context.Context, _ string, cs []dnsupdate.Change) ([]dnsupdate.Conflict, error) {
	var conf []dnsupdate.Conflict
	if m.conflicts != nil {
		conf = m.conflicts(cs)
	}
	if m.err == nil {
		for _, c := range cs {
			if !isConflict(conf, c) {
				m.applied = append(m.applied, c)
			}
		}
	}
	return conf, m.err
}

// TestApplyConflicts: a removal the provider did not send (another host
// claimed the record since the run observed, or the UPDATE's prerequisite
// failed) stays owned, is held with the reason, and is no error; other
// errors stay errors and a removal that went through is forgotten.
func TestApplyConflicts(t *testing.T) {
	a, b := fakeRec(t, 1), fakeRec(t, 2)
	claimedA := func(cs []dnsupdate.Change) []dnsupdate.Conflict {
		var out []dnsupdate.Conflict
		for _, c := range cs {
			if c.Op == dnsupdate.Remove && c.Record.Equal(a) {
				out = append(out, dnsupdate.Conflict{Change: c, Hosts: []string{"mx2"}, Reason: "host mx2 claimed it"})
			}
		}
		return out
	}
	prereqErr := &dnsupdate.UpdateError{Class: dnsupdate.ErrPrerequisite, Op: "update", Rcode: 8}
	for _, tc := range []struct {
		name      string
		hostID    string
		conflicts func([]dnsupdate.Change) []dnsupdate.Conflict
		err       error
		adds      bool
		wantErr   bool
		ownedA    bool // a still owned after the run
		ownedB    bool
		heldWords string
	}{
		{name: "no conflict: both removals forgotten", hostID: "mx1"},
		{name: "a claimed by mx2: a kept owned and held", hostID: "mx1", conflicts: claimedA, ownedA: true, heldWords: "host mx2 claimed it"},
		{name: "prerequisite refused, removals only: kept, no error", hostID: "mx1", err: prereqErr, ownedA: true, ownedB: true, heldWords: "prerequisite failed"},
		{name: "prerequisite refused without host_id: kept, no error", err: prereqErr, ownedA: true, ownedB: true, heldWords: "prerequisite failed"},
		{name: "prerequisite refused with an addition: an error", hostID: "mx1", err: prereqErr, adds: true, wantErr: true, ownedA: true, ownedB: true},
		{name: "server failure: an error, nothing forgotten", hostID: "mx1", err: &dnsupdate.UpdateError{Class: dnsupdate.ErrServer, Op: "update", Rcode: 2}, wantErr: true, ownedA: true, ownedB: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := world(t, nil, 60, []servedRec{{rec: a, since: time.Hour}, {rec: b, since: time.Hour}}, nil)
			s.HostID = tc.hostID
			ov := s.owner(tOwner)
			ov.Provider = "lab"
			s.DNS.own(tOwner, a, "lab")
			s.DNS.own(tOwner, b, "lab")
			m := &memRegistry{served: ov.Current, conflicts: tc.conflicts, err: tc.err}
			cfg := &config.Config{HostID: tc.hostID}
			e := &Engine{Config: cfg, Store: &state.Store{Dir: t.TempDir()}, Publishers: map[string]Publisher{"lab": m}}
			plan := ov.plan(nil)
			plan.keepClaims = true
			plan.Changes = dnsupdate.Plan{{Op: dnsupdate.Remove, RR: dnsupdate.RR{Owner: tOwner, TTL: 60, Record: a}}, {Op: dnsupdate.Remove, RR: dnsupdate.RR{Owner: tOwner, TTL: 60, Record: b}}}
			if tc.adds {
				plan.Changes = append(plan.Changes, dnsupdate.Change{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: tOwner, TTL: 60, Record: fakeRec(t, 3)}})
			}
			err := e.apply(t.Context(), s, []*OwnerPlan{plan})
			if (err != nil) != tc.wantErr {
				t.Fatalf("apply = %v, want error %v", err, tc.wantErr)
			}
			if tc.hostID != "" && m.plain != 0 {
				t.Errorf("Apply called %d times with host_id set, want ApplyClaimed only", m.plain)
			}
			owned := s.DNS.owned(tOwner)
			if got := containsRecord(owned, a); got != tc.ownedA {
				t.Errorf("a owned = %v, want %v", got, tc.ownedA)
			}
			if got := containsRecord(owned, b); got != tc.ownedB {
				t.Errorf("b owned = %v, want %v", got, tc.ownedB)
			}
			reasons := strings.Join(plan.HeldReasons, "\n")
			if tc.heldWords != "" && !strings.Contains(reasons, tc.heldWords) {
				t.Errorf("held reasons %q, want %q", reasons, tc.heldWords)
			}
			if tc.heldWords == "" && len(plan.Held) > 0 {
				t.Errorf("held %v, want none", plan.Held)
			}
			removed := []string{plan.Changes[0].RR.String(), plan.Changes[1].RR.String()}
			var held []string
			settleConflicts(s, &removed, &held)
			if len(removed)+len(held) != 2 || len(held) != len(s.Conflicts) {
				t.Errorf("settleConflicts: removed %v held %v for %d conflicts", removed, held, len(s.Conflicts))
			}
		})
	}
}
