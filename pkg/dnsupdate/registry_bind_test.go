package dnsupdate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/libdns/rfc2136"
)

// claimLine is the nsupdate line that adds host's claim of r at owner.
func claimLine(owner, host string, r tlsa.Record) string {
	c := Claim{Owner: owner, Host: host, Record: r}
	return fmt.Sprintf("update add %s 60 IN TXT %q\n", RegistryName(owner), c.Text())
}

// TestApplyClaimedRace is the registry race (decisions R1–R4) against
// BIND: host A decided to remove r1 because no other host claimed it; host
// B claims r1 between A's read of the registry and A's UPDATE. The
// UPDATE's prerequisite on the registry refuses it, A reads the registry
// again, sees B's claim and drops the removal as a Conflict: r1 stays. The
// cases differ in the registry A read (empty: §2.4.3, YXRRSET; A's own
// claim there: §2.4.2, NXRRSET) and in Prerequisites.
func TestApplyClaimedRace(t *testing.T) {
	const owner = "_25._tcp.mail.example.test."
	l := bindlab.Start(t, bindlab.Options{TTL: 1})
	r1, r2, other := rec(0x11), rec(0x22), rec(0x33)
	for _, tc := range []struct {
		name     string
		prereq   bool
		aClaims  bool   // A's own claim of r2 is in the registry A reads
		inject   string // what B does between A's read and A's UPDATE
		removed  bool   // r1 removed in the end
		conflict string // text of the conflict, "" for none
		updates  int
	}{
		{name: "empty registry, B claims r1 (YXRRSET)", inject: "claim r1", conflict: "host mxb claimed it", updates: 1},
		{name: "A's claim read, B claims r1 (NXRRSET)", aClaims: true, inject: "claim r1", conflict: "host mxb claimed it", updates: 1},
		{name: "prerequisites on, B claims r1", prereq: true, aClaims: true, inject: "claim r1", conflict: "host mxb claimed it", updates: 1},
		{name: "B claims another record: resent, removed", aClaims: true, inject: "claim other", removed: true, updates: 2},
		{name: "empty registry, B claims another record: resent, removed", inject: "claim other", removed: true, updates: 2},
		{name: "nobody changes the registry: one UPDATE", aClaims: true, removed: true, updates: 1},
		{name: "B keeps changing the registry: kept, no error", aClaims: true, inject: "busy", conflict: "changed between reading it and the UPDATE", updates: prerequisiteAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.Nsupdate(t, fmt.Sprintf("update delete %s TLSA\nupdate delete %s TXT\nupdate add %s 60 IN TLSA %s\nupdate add %s 60 IN TLSA %s\n",
				owner, RegistryName(owner), owner, r1, owner, r2))
			if tc.aClaims {
				l.Nsupdate(t, claimLine(owner, "mxa", r2))
			}
			a := labProvider(t, l)
			a.Prerequisites = tc.prereq
			n := 0
			a.beforeUpdate = func(attempt int) {
				switch {
				case tc.inject == "claim r1" && attempt == 1:
					l.Nsupdate(t, claimLine(owner, "mxb", r1))
				case tc.inject == "claim other" && attempt == 1:
					l.Nsupdate(t, claimLine(owner, "mxb", other))
				case tc.inject == "busy":
					n++
					l.Nsupdate(t, claimLine(owner, "mxb", rec(byte(0x40+n))))
				}
			}
			plan := Plan{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: r1}}, {Op: Keep, RR: RR{Owner: owner, TTL: 60, Record: r2}}}
			before := a.Sent().Updates
			conflicts, err := a.ApplyClaimed(t.Context(), "mxa", plan)
			if err != nil {
				t.Fatalf("ApplyClaimed: %v (want no error: a conflict is not a failure)", err)
			}
			if got := a.Sent().Updates - before; got != int64(tc.updates) {
				t.Errorf("sent %d UPDATEs, want %d", got, tc.updates)
			}
			got := strings.Join(served(t, a, owner), "\n")
			if has := strings.Contains(got, r1.String()); has == tc.removed {
				t.Fatalf("r1 served = %v, want %v; served:\n%s", has, !tc.removed, got)
			}
			if !strings.Contains(got, r2.String()) {
				t.Fatalf("r2 (kept) is gone: %s", got)
			}
			switch {
			case tc.conflict == "" && len(conflicts) > 0:
				t.Errorf("conflicts = %v, want none", conflicts)
			case tc.conflict != "" && (len(conflicts) != 1 || !conflicts[0].Change.Record.Equal(r1) || !strings.Contains(conflicts[0].Reason, tc.conflict)):
				t.Errorf("conflicts = %v, want one for r1 saying %q", conflicts, tc.conflict)
			case tc.conflict != "":
				t.Logf("conflict: %s", conflicts[0])
			}
		})
	}
}

// TestApplyClaimedHonoursReadClaims: a removal another host already claims
// when ApplyClaimed reads the registry is never sent; one this host alone
// claims goes, in one UPDATE with its prerequisite; Apply (no host) keeps
// the old behaviour.
func TestApplyClaimedHonoursReadClaims(t *testing.T) {
	const owner = "_25._tcp.mail.example.test."
	l := bindlab.Start(t, bindlab.Options{TTL: 1})
	r1, r2, r3 := rec(0x11), rec(0x22), rec(0x33)
	l.Nsupdate(t, fmt.Sprintf("update add %s 60 IN TLSA %s\nupdate add %s 60 IN TLSA %s\nupdate add %s 60 IN TLSA %s\n", owner, r1, owner, r2, owner, r3))
	l.Nsupdate(t, claimLine(owner, "mxb", r1)+claimLine(owner, "mxa", r2)+claimLine(owner, "mxa", r3))
	l.Nsupdate(t, fmt.Sprintf("update add %s 60 IN TXT \"v=not-a-claim\"\n", RegistryName(owner)))
	a := labProvider(t, l)
	plan := Plan{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: r1}}, {Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: r2}}}
	conflicts, err := a.ApplyClaimed(t.Context(), "mxa", plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 1 || !conflicts[0].Change.Record.Equal(r1) || strings.Join(conflicts[0].Hosts, ",") != "mxb" {
		t.Fatalf("conflicts = %v, want r1 claimed by mxb", conflicts)
	}
	assertServed(t, a, owner, r1, r3)
	if n := a.Sent().Updates; n != 1 {
		t.Errorf("sent %d UPDATEs, want 1", n)
	}
	// Everything claimed by others: nothing is sent.
	conflicts, err = a.ApplyClaimed(t.Context(), "mxa", Plan{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: r1}}})
	if err != nil || len(conflicts) != 1 || a.Sent().Updates != 1 {
		t.Fatalf("ApplyClaimed = %v, %v after %d UPDATEs, want one conflict and no UPDATE", conflicts, err, a.Sent().Updates)
	}
	// Plain Apply does not look at the registry.
	if err := a.Apply(t.Context(), Plan{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: r1}}}); err != nil {
		t.Fatal(err)
	}
	assertServed(t, a, owner, r3)
}

// TestLibdnsClaimsAgainstBIND: claims written through libdns/rfc2136 are
// the registry's TXT records (RFC2136.Claims reads them), a rerun sends
// nothing, removal deletes only that claim, and ApplyClaimed keeps a
// removal another host claims (read right before DeleteRecords).
func TestLibdnsClaimsAgainstBIND(t *testing.T) {
	const owner = "_25._tcp.mail.example.test."
	l := bindlab.Start(t, bindlab.Options{TTL: 1})
	rp := labProvider(t, l)
	lp := &rfc2136.Provider{KeyName: l.KeyName, KeyAlg: l.KeyAlgorithm, Key: l.KeySecret(), Server: l.Primary}
	ld := &Libdns{Name: "rfc2136", Provider: lp, Reader: labProvider(t, l)}
	ctx := t.Context()
	a, b := Claim{Owner: owner, Host: "mxa", Record: rec(1)}, Claim{Owner: owner, Host: "mxa", Record: rec(2)}
	if err := ld.ApplyClaims(ctx, 60, []Claim{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := rp.Claims(ctx, owner)
	if err != nil || len(got) != 2 || got[0].Text() != a.Text() || got[1].Text() != b.Text() {
		t.Fatalf("claims read by RFC2136 = %v, %v; want %v and %v", got, err, a, b)
	}
	serial := l.Serial(t, l.Primary, "example.test.")
	if err := ld.ApplyClaims(ctx, 60, []Claim{a}, []Claim{{Owner: owner, Host: "mxa", Record: rec(9)}}); err != nil {
		t.Fatal(err)
	}
	if s := l.Serial(t, l.Primary, "example.test."); s != serial {
		t.Errorf("a rerun changed the serial %d → %d", serial, s)
	}
	if err := ld.ApplyClaims(ctx, 60, nil, []Claim{b}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ld.Claims(ctx, owner); len(got) != 1 || got[0].Text() != a.Text() {
		t.Fatalf("after removing b: %v", got)
	}
	// mxb claims rec(1); mxa removes rec(1) and rec(3).
	l.Nsupdate(t, fmt.Sprintf("update add %s 60 IN TLSA %s\nupdate add %s 60 IN TLSA %s\n", owner, rec(1), owner, rec(3))+claimLine(owner, "mxb", rec(1)))
	conflicts, err := ld.ApplyClaimed(ctx, "mxa", Plan{{Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}, {Op: Remove, RR: RR{Owner: owner, TTL: 60, Record: rec(3)}}})
	if err != nil || len(conflicts) != 1 || !conflicts[0].Change.Record.Equal(rec(1)) {
		t.Fatalf("ApplyClaimed = %v, %v; want rec(1) kept for mxb", conflicts, err)
	}
	assertServed(t, rp, owner, rec(1))
}
