package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/tlsa"
)

// expiring returns c re-signed so that its leaf expires at notAfter.
func expiring(t *testing.T, ca *testCA, c *chain.Chain, notAfter time.Time) *chain.Chain {
	t.Helper()
	tmpl := *c.Leaf
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, c.Key.(*ecdsa.PrivateKey).Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cp := *c
	cp.Leaf = leaf
	return &cp
}

// TestLineageStatusServed covers the figures status reports about the
// served chain file: its expiry, whether it matches an aged record at every
// owner (Unprotected), and whether a pending switch can become safe before
// it expires (ExpiryErr).
func TestLineageStatusServed(t *testing.T) {
	ca := newCA(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cur := memChain(t, ca, k, 0)
	next := memChain(t, ca, nil, time.Hour)
	other := memChain(t, ca, nil, 0)
	in := func(d time.Duration) time.Time { return tNow.Add(d) }

	for _, tc := range []struct {
		name        string
		served      *chain.Chain
		expires     time.Time // zero: as issued
		pending     *chain.Chain
		recs        []servedRec
		history     map[uint32]time.Duration
		unprotected string // "" none, else a substring of the one entry
		expiryErr   string
	}{
		{name: "served chain's record aged", served: cur,
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}}},
		{name: "only another key's record is aged", served: cur,
			recs:        []servedRec{{rec: rec311(t, other), since: time.Hour}},
			unprotected: "matches no aged record"},
		{name: "served chain's record on one server only, another aged", served: cur,
			recs:        []servedRec{{rec: rec311(t, other), since: time.Hour}, {rec: rec311(t, cur), since: time.Hour, on: []string{srvA}}},
			unprotected: tOwner},
		{name: "first issuance: its record published, not aged yet", served: cur,
			recs: []servedRec{{rec: rec311(t, cur), since: 10 * time.Second}}},
		{name: "no RRset served and none cached", served: cur},
		{name: "no RRset served but one may still be cached", served: cur,
			history: map[uint32]time.Duration{3600: 10 * time.Minute}, unprotected: "records none"},
		{name: "pending switch safe before the served leaf expires", served: cur, expires: in(48 * time.Hour), pending: next,
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, next), since: 10 * time.Second}}},
		{name: "pending switch safe only after the served leaf expires", served: cur, expires: in(time.Minute), pending: next,
			recs:      []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, next), since: 10 * time.Second}},
			expiryErr: "not before the served certificate expires at " + in(time.Minute).Format(time.RFC3339)},
		{name: "served leaf expired, pending switch blocked", served: cur, expires: in(-time.Minute), pending: next,
			recs:      []servedRec{{rec: rec311(t, cur), since: time.Hour}},
			expiryErr: "the served certificate expired at " + in(-time.Minute).Format(time.RFC3339)},
		{name: "pending switch blocked by a server, leaf valid: unknown, no error", served: cur, expires: in(time.Minute), pending: next,
			recs: []servedRec{{rec: rec311(t, cur), since: time.Hour}, {rec: rec311(t, next), since: time.Hour, on: []string{srvA}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served := tc.served
			if !tc.expires.IsZero() {
				served = expiring(t, ca, served, tc.expires)
			}
			s, lv := world(t, served, 60, tc.recs, tc.history)
			nexts := map[string]*chain.Chain{}
			want := map[string][]tlsa.Record{tOwner: {rec311(t, cur)}}
			if tc.pending != nil {
				nexts["mail"] = tc.pending
				want[tOwner] = append(want[tOwner], rec311(t, tc.pending))
			}
			e := &Engine{}
			ls := e.lineageStatus(&Status{}, s, lv, nexts, want)
			if !ls.ServedNotAfter.Equal(served.Leaf.NotAfter) || ls.ServedNotAfter.Location() != time.UTC {
				t.Errorf("ServedNotAfter = %v, want %v in UTC", ls.ServedNotAfter, served.Leaf.NotAfter.UTC())
			}
			switch {
			case tc.unprotected == "" && len(ls.Unprotected) > 0:
				t.Errorf("Unprotected = %q, want none", ls.Unprotected)
			case tc.unprotected != "" && (len(ls.Unprotected) != 1 || !strings.Contains(ls.Unprotected[0], tc.unprotected)):
				t.Errorf("Unprotected = %q, want one entry with %q", ls.Unprotected, tc.unprotected)
			}
			if (tc.expiryErr == "") != (ls.ExpiryErr == "") || !strings.Contains(ls.ExpiryErr, tc.expiryErr) {
				t.Errorf("ExpiryErr = %q, want %q", ls.ExpiryErr, tc.expiryErr)
			}
			st := &Status{Lineages: []LineageStatus{ls}}
			if (tc.unprotected != "" || tc.expiryErr != "") && (st.OK() || !strings.Contains(st.Waiting(), "lineage mail: ")) {
				t.Errorf("OK() = %v, Waiting() = %q: want the problem reported", st.OK(), st.Waiting())
			}
		})
	}
}

// TestLineageStatusDANETAName: status warns, naming the lineage and the
// host, when the DANE-TA records at an owner do not apply to the served or
// the next chain because its leaf lacks the MX host (RFC 7672 §3.2.3) —
// also when a 3 1 1 beside them makes the switch safe, which is then
// silent about the 2 1 1 otherwise; no warning when the name is there.
func TestLineageStatusDANETAName(t *testing.T) {
	ca := newCA(t)
	named := memChain(t, ca, nil, 0)
	unnamed := memChainNamed(t, ca, nil, time.Hour, "smtp.example.test")
	for _, tc := range []struct {
		name         string
		served, next *chain.Chain
		recs         []servedRec
		noTA         bool   // usages = ["3 1 1"]: no 2 1 1 wanted
		want         string // "" no warning, else a substring of the one warning
	}{
		{name: "served chain names the host", served: named,
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}, {rec: rec311(t, named), since: time.Hour}}},
		{name: "served chain lacks the host, 3 1 1 and 2 1 1 aged", served: unnamed,
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}, {rec: rec311(t, unnamed), since: time.Hour}},
			want: "host mail.example.test (" + tOwner + "): the served chain's DANE-TA 2 1 1 "},
		{name: "next chain lacks the host; the switch is safe on its 3 1 1", served: named, next: unnamed,
			recs: []servedRec{{rec: rec211(t, ca), since: time.Hour}, {rec: rec311(t, named), since: time.Hour}, {rec: rec311(t, unnamed), since: time.Hour}},
			want: "the next chain's DANE-TA 2 1 1 "},
		{name: "no 2 x x record served or wanted: nothing to say", served: unnamed, noTA: true,
			recs: []servedRec{{rec: rec311(t, unnamed), since: time.Hour}}},
		{name: "2 1 1 wanted, not published yet, leaf lacks the host", served: unnamed,
			recs: []servedRec{{rec: rec311(t, unnamed), since: time.Hour}}, want: "the served chain's DANE-TA 2 1 1 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lv := world(t, tc.served, 60, tc.recs, nil)
			lv.L.Usages = []string{"3 1 1", "2 1 1"}
			nexts := map[string]*chain.Chain{}
			want := map[string][]tlsa.Record{tOwner: {rec311(t, tc.served), rec211(t, ca)}}
			if tc.noTA {
				lv.L.Usages = []string{"3 1 1"}
				want[tOwner] = want[tOwner][:1]
			}
			if tc.next != nil {
				nexts["mail"] = tc.next
				want[tOwner] = append(want[tOwner], rec311(t, tc.next))
				if d := decideSwitch(s, lv, tc.next, want); !d.Safe {
					t.Fatalf("the switch is not safe: %s %v", d.Reason, d.Blocking)
				}
			}
			ls := (&Engine{}).lineageStatus(&Status{}, s, lv, nexts, want)
			var got []string
			for _, w := range ls.Warnings {
				if strings.Contains(w, "DANE-TA") {
					got = append(got, w)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("warnings %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], `do not name "mail.example.test"`)):
				t.Errorf("warnings %q, want one with %q naming the host", got, tc.want)
			}
		})
	}
}

func TestExpiryRisk(t *testing.T) {
	for _, tc := range []struct {
		name             string
		notAfter, safeAt time.Time
		want             string
	}{
		{"no served chain", time.Time{}, tNow, ""},
		{"safe time unknown", tNow.Add(time.Hour), time.Time{}, ""},
		{"safe before expiry", tNow.Add(time.Hour), tNow.Add(time.Minute), ""},
		{"safe exactly at expiry", tNow.Add(time.Hour), tNow.Add(time.Hour), "not before the served certificate expires"},
		{"already expired", tNow, time.Time{}, "expired at 2026-06-01T12:00:00Z"},
	} {
		if got := expiryRisk(tc.notAfter, tc.safeAt, tNow); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: expiryRisk = %q, want %q", tc.name, got, tc.want)
		}
	}
}
