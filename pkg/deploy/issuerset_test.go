package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/tlsa"
)

// rsaCA returns a self-signed RSA CA certificate: a member of an issuer set
// that must not be pinned for ECDSA lineages.
func rsaCA(t *testing.T) *x509.Certificate {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "R10"},
		NotBefore: tNow.Add(-time.Hour), NotAfter: tNow.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func taOf(c *chain.Chain) *chain.Chain { cp := *c; cp.TA = c.Issuers[0]; return &cp }

// TestIssuerSetRenewals: with ta = "issuer-set" and only 2 1 1 pinned, a
// renewal onto another member (even with a new key) is no DNS change and
// an immediate switch; onto a non-member it is a publish of that issuer's
// 2 1 1 and a switch that waits for it to age; an RSA member is never
// wanted for an ECDSA lineage.
func TestIssuerSetRenewals(t *testing.T) {
	caA, caB, caC := newCA(t), newCA(t), newCA(t)
	rsaMember := rsaCA(t)
	// tNow is in 2026-06; the fixture CAs are valid around the real clock.
	set := &chain.IssuerSet{Source: "le-intermediates/", Certs: []*x509.Certificate{caA.cert, caB.cert, rsaMember}}
	cur := taOf(memChain(t, caA, nil, 0))
	onB := taOf(memChain(t, caB, nil, time.Hour))
	onC := taOf(memChain(t, caC, nil, time.Hour))
	rsaRec, _ := tlsa.FromCertificate(rsaMember, tlsa.UsageDANETA, tlsa.SelectorSPKI, tlsa.MatchSHA256)

	for _, tc := range []struct {
		name     string
		next     *chain.Chain
		recs     []servedRec
		wantAdd  []tlsa.Record
		safe     bool
		blocking string
	}{
		{name: "renewal onto a published member: no DNS change, safe", next: onB,
			recs: []servedRec{{rec: rec211(t, caA), since: time.Hour}, {rec: rec211(t, caB), since: time.Hour}}, safe: true},
		{name: "members not published yet: both added ahead, the switch waits", next: onB,
			recs: []servedRec{{rec: rec211(t, caA), since: time.Hour}}, wantAdd: []tlsa.Record{rec211(t, caB)}, blocking: "does not serve it"},
		{name: "renewal onto a non-member: its 2 1 1 is published, the switch waits", next: onC,
			recs: []servedRec{{rec: rec211(t, caA), since: time.Hour}, {rec: rec211(t, caB), since: time.Hour}}, wantAdd: []tlsa.Record{rec211(t, caC)}, blocking: "does not serve it"},
		{name: "non-member published and aged: safe", next: onC,
			recs: []servedRec{{rec: rec211(t, caA), since: time.Hour}, {rec: rec211(t, caB), since: time.Hour}, {rec: rec211(t, caC), since: time.Hour}}, safe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, cur, 60, tc.recs, nil)
			s.Now = time.Now() // the fixture CAs' validity
			lv.L.Usages, lv.L.TA, lv.IssuerSet = []string{"2 1 1"}, chain.TAIssuerSet, set
			e := &Engine{}
			want, err := e.wanted(s, map[string]*chain.Chain{"mail": tc.next})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []tlsa.Record{rec211(t, caA), rec211(t, caB)} {
				if !containsRecord(want[tOwner], r) {
					t.Errorf("wanted %v lacks member %v", want[tOwner], r)
				}
			}
			if containsRecord(want[tOwner], rsaRec) {
				t.Errorf("wanted %v holds the RSA member's record for an ECDSA lineage", want[tOwner])
			}
			var added []tlsa.Record
			for _, ch := range additions(s.owner(tOwner), want[tOwner]) {
				added = append(added, ch.Record)
			}
			if len(added) != len(tc.wantAdd) {
				t.Fatalf("additions = %v, want %v", added, tc.wantAdd)
			}
			for _, r := range tc.wantAdd {
				if !containsRecord(added, r) {
					t.Errorf("additions = %v, want %v", added, tc.wantAdd)
				}
			}
			d := decideSwitch(s, lv, tc.next, want)
			if d.Safe != tc.safe {
				t.Fatalf("safe = %v, want %v: %s %v", d.Safe, tc.safe, d.Reason, d.Blocking)
			}
			if tc.blocking != "" && !strings.Contains(strings.Join(d.Blocking, "; "), tc.blocking) {
				t.Errorf("blocking %v, want %q", d.Blocking, tc.blocking)
			}
		})
	}
}

// TestIssuerSetRemovals: a member's record stays while it is in the set;
// once the operator drops it from the set it is removed like any owned
// record no chain relies on, and held while the served chain is issued by
// it (a smtpd that still presents a chain from it).
func TestIssuerSetRemovals(t *testing.T) {
	caA, caB := newCA(t), newCA(t)
	onA := taOf(memChain(t, caA, nil, 0))
	onB := taOf(memChain(t, caB, nil, 0))
	for _, tc := range []struct {
		name      string
		installed *chain.Chain
		presented *chain.Chain
		set       []*x509.Certificate
		removed   bool
		held      bool
	}{
		{name: "B in the set: kept", installed: onA, set: []*x509.Certificate{caA.cert, caB.cert}},
		{name: "B dropped from the set, served chain on A: removed", installed: onA, set: []*x509.Certificate{caA.cert}, removed: true},
		{name: "B dropped from the set, chain file on B: kept (the served issuer is wanted)", installed: onB, set: []*x509.Certificate{caA.cert}},
		{name: "B dropped from the set, a smtpd still presents B: held", installed: onA, presented: onB, set: []*x509.Certificate{caA.cert}, held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, tc.installed, 60, []servedRec{{rec: rec211(t, caA), since: time.Hour}, {rec: rec211(t, caB), since: time.Hour}}, nil)
			s.Now = time.Now()
			lv.L.Usages, lv.L.TA, lv.IssuerSet = []string{"2 1 1"}, chain.TAIssuerSet, &chain.IssuerSet{Source: "set", Certs: tc.set}
			if tc.presented != nil {
				lv.Presented = map[string][]*x509.Certificate{"127.0.0.1:25": tc.presented.Served()}
			}
			s.DNS.own(tOwner, rec211(t, caA), "lab")
			s.DNS.own(tOwner, rec211(t, caB), "lab")
			want, err := (&Engine{}).wanted(s, map[string]*chain.Chain{})
			if err != nil {
				t.Fatal(err)
			}
			remove, held := decideRemovals(s, s.owner(tOwner), want[tOwner], nil, map[string]string{}, nil)
			gotRemoved := containsRR(remove, rec211(t, caB))
			gotHeld := false
			for _, h := range held {
				gotHeld = gotHeld || h.RR.Record.Equal(rec211(t, caB))
			}
			if gotRemoved != tc.removed || gotHeld != tc.held {
				t.Errorf("B's 2 1 1: removed %v held %v, want removed %v held %v (remove %v, held %v)", gotRemoved, gotHeld, tc.removed, tc.held, remove, held)
			}
			if containsRR(remove, rec211(t, caA)) {
				t.Errorf("A's 2 1 1 (a member) removed")
			}
		})
	}
}

func TestIssuerSetWarnings(t *testing.T) {
	caA, caC := newCA(t), newCA(t)
	s, lv := world(t, taOf(memChain(t, caA, nil, 0)), 60, nil, nil)
	lv.IssuerSet = &chain.IssuerSet{Source: "le/", Certs: []*x509.Certificate{caA.cert}}
	now := time.Now()
	if w := issuerSetWarnings(lv, nil, now); len(w) != 1 || !strings.Contains(w[0], "expires on") {
		// The fixture CA lives a day: within the 30-day warning.
		t.Errorf("warnings = %q, want one 'expires on'", w)
	}
	lv.Source = taOf(memChain(t, caC, nil, time.Hour))
	w := issuerSetWarnings(lv, nil, now)
	if !has(w, `issued by "CN=danehook test CA"`) || !has(w, "not in issuer set") {
		t.Errorf("warnings = %q, want the ACME client's non-member issuer named", w)
	}
	_ = s
}

// selfSigned returns a chain of one self-signed leaf for tHost (what
// Postfix serves before danehook's first switch: Debian's snakeoil, a
// panel's certificate).
func selfSigned(t *testing.T) *chain.Chain {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: tHost}, DNSNames: []string{tHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &chain.Chain{Key: k, Leaf: leaf}
}

// TestWantedCoversServedChain: the records wanted at an owner always match
// the chain Postfix serves now, whatever the usages; publishing only the
// records of the chain to come (2 1 1 of an issuer set, say) while Postfix
// serves a chain none of them matches makes every DANE sender fail until
// the switch. The served chain's 3 1 1 is wanted exactly when the usages
// give no record that matches it.
func TestWantedCoversServedChain(t *testing.T) {
	caA, caB := newCA(t), newCA(t)
	snake := selfSigned(t)
	onA := taOf(memChain(t, caA, nil, 0))
	onB := taOf(memChain(t, caB, nil, time.Hour))
	for _, tc := range []struct {
		name      string
		usages    []string
		installed *chain.Chain
		next      *chain.Chain
		want311   *chain.Chain // the chain whose 3 1 1 is wanted, nil for none
	}{
		{name: "2 1 1 only, Postfix serves a self-signed chain: its 3 1 1 bridges", usages: []string{"2 1 1"}, installed: snake, next: onA, want311: snake},
		{name: "2 1 1 only, no renewal yet: the self-signed chain's 3 1 1", usages: []string{"2 1 1"}, installed: snake, want311: snake},
		{name: "2 1 1 only, Postfix serves a member's chain: nothing more", usages: []string{"2 1 1"}, installed: onA, next: onB},
		{name: "2 1 1 only, a chain from outside the set: its own 2 1 1 covers it", usages: []string{"2 1 1"}, installed: taOf(memChain(t, newCA(t), nil, 0)), next: onA, want311: nil},
		{name: "3 1 1: the served key's record, once", usages: []string{"3 1 1"}, installed: snake, next: onA, want311: snake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, tc.installed, 60, nil, nil)
			s.Now = time.Now()
			lv.L.Usages = tc.usages
			if containsUsage(lv.L, "2 1 1") {
				lv.L.TA, lv.IssuerSet = chain.TAIssuerSet, &chain.IssuerSet{Source: "set", Certs: []*x509.Certificate{caA.cert, caB.cert}}
			}
			want, err := (&Engine{}).wanted(s, map[string]*chain.Chain{"mail": tc.next})
			if err != nil {
				t.Fatal(err)
			}
			if !covered(tc.installed.Served(), tHost, want[tOwner], s.Now) {
				t.Fatalf("wanted %v matches nothing Postfix serves now", want[tOwner])
			}
			got := containsRecord(want[tOwner], rec311(t, tc.installed))
			if tc.want311 != nil && !got {
				t.Errorf("wanted %v lacks the served chain's 3 1 1", want[tOwner])
			}
			if tc.want311 == nil && got {
				t.Errorf("wanted %v holds a 3 1 1 the usages do not ask for, for a chain its 2 1 1 covers", want[tOwner])
			}
			n := 0
			for _, r := range want[tOwner] {
				if r.Equal(rec311(t, tc.installed)) {
					n++
				}
			}
			if n > 1 {
				t.Errorf("the served chain's 3 1 1 is wanted %d times", n)
			}
		})
	}
}
