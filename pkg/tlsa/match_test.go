package tlsa

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	p := newPKI(t)
	// A leaf that expired last year and names another host: DANE-EE ignores both.
	oddKey := newKey(t, "rsa2048")
	odd := newCert(t, oddKey, certOpts{
		cn: "www.other.example", dns: []string{"www.other.example"},
		notBefore: time.Now().AddDate(-2, 0, 0), notAfter: time.Now().AddDate(-1, 0, 0),
	}, p.inter, p.intKey)
	selfSigned := newCert(t, oddKey, certOpts{cn: "self"}, nil, nil)
	// Another CA whose certificate is sent but did not issue the leaf.
	strangerKey := newKey(t, "p256")
	stranger := newCert(t, strangerKey, certOpts{cn: "Stranger CA", ca: true}, nil, nil)

	ee311 := mustRecord(t, p.leaf, 3, 1, 1)
	ee301 := mustRecord(t, p.leaf, 3, 0, 1)
	ee312 := mustRecord(t, p.leaf, 3, 1, 2)
	ee300 := mustRecord(t, p.leaf, 3, 0, 0)
	eeOdd := mustRecord(t, odd, 3, 1, 1)
	eeSelf := mustRecord(t, selfSigned, 3, 1, 1)
	taInt := mustRecord(t, p.inter, 2, 1, 1)
	taInt0 := mustRecord(t, p.inter, 2, 0, 1)
	taRoot := mustRecord(t, p.root, 2, 1, 1)
	taRoot0 := mustRecord(t, p.root, 2, 0, 2)
	taLeaf := mustRecord(t, p.leaf, 2, 1, 1)
	taStranger := mustRecord(t, stranger, 2, 1, 1)
	eeOnInt := mustRecord(t, p.inter, 3, 1, 1)
	pkixEE := mustRecord(t, p.leaf, 1, 1, 1)
	pkixTA := mustRecord(t, p.inter, 0, 1, 1)
	broken := Record{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2, 3}}

	type hit struct{ index, depth int }
	tests := []struct {
		name     string
		chain    []*x509.Certificate
		rrset    []Record
		ok       bool
		matches  []hit
		rejected []hit
		unusable []int
	}{
		{"3 1 1 leaf", []*x509.Certificate{p.leaf, p.inter}, []Record{ee311}, true, []hit{{0, 0}}, nil, nil},
		{"3 x x all forms", []*x509.Certificate{p.leaf}, []Record{ee301, ee312, ee300}, true, []hit{{0, 0}, {1, 0}, {2, 0}}, nil, nil},
		{"3 1 1 stale key", []*x509.Certificate{p.leaf, p.inter}, []Record{eeOdd}, false, nil, nil, nil},
		{"current and next", []*x509.Certificate{p.leaf, p.inter}, []Record{eeOdd, ee311}, true, []hit{{1, 0}}, nil, nil},
		{"EE ignores expiry and name", []*x509.Certificate{odd, p.inter}, []Record{eeOdd}, true, []hit{{0, 0}}, nil, nil},
		{"EE on a self-signed leaf", []*x509.Certificate{selfSigned}, []Record{eeSelf}, true, []hit{{0, 0}}, nil, nil},
		{"EE only at depth 0", []*x509.Certificate{p.leaf, p.inter}, []Record{eeOnInt}, false, nil, []hit{{0, 1}}, nil},
		{"TA intermediate in chain", []*x509.Certificate{p.leaf, p.inter}, []Record{taInt, taInt0}, true, []hit{{0, 1}, {1, 1}}, nil, nil},
		{"TA intermediate not in chain", []*x509.Certificate{p.leaf}, []Record{taInt}, false, nil, nil, nil},
		{"TA root in chain", []*x509.Certificate{p.leaf, p.inter, p.root}, []Record{taRoot, taRoot0}, true, []hit{{0, 2}, {1, 2}}, nil, nil},
		{"TA root not sent", []*x509.Certificate{p.leaf, p.inter}, []Record{taRoot}, false, nil, nil, nil},
		{"TA chain out of order", []*x509.Certificate{p.leaf, p.root, p.inter}, []Record{taRoot}, true, []hit{{0, 1}}, nil, nil},
		{"TA on the leaf is no TA", []*x509.Certificate{p.leaf, p.inter}, []Record{taLeaf}, false, nil, []hit{{0, 0}}, nil},
		{"TA sent but not an issuer", []*x509.Certificate{p.leaf, p.inter, stranger}, []Record{taStranger}, false, nil, []hit{{0, 2}}, nil},
		{"TA with an expired leaf", []*x509.Certificate{odd, p.inter}, []Record{taInt}, true, []hit{{0, 1}}, nil, nil},
		{"PKIX never matches", []*x509.Certificate{p.leaf, p.inter}, []Record{pkixEE, pkixTA}, false, nil, []hit{{0, 0}, {1, 1}}, []int{0, 1}},
		{"PKIX beside DANE-EE", []*x509.Certificate{p.leaf, p.inter}, []Record{pkixEE, ee311}, true, []hit{{1, 0}}, []hit{{0, 0}}, []int{0}},
		{"malformed record", []*x509.Certificate{p.leaf}, []Record{broken}, false, nil, nil, []int{0}},
		{"empty chain", nil, []Record{ee311}, false, nil, nil, nil},
		{"empty rrset", []*x509.Certificate{p.leaf}, nil, false, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Match(tt.chain, tt.rrset)
			if res.OK() != tt.ok {
				t.Errorf("OK() = %v, want %v\n%s", res.OK(), tt.ok, res)
			}
			var gotM, gotR []hit
			for _, m := range res.Matches {
				gotM = append(gotM, hit{m.Index, m.Depth})
				if !m.Record.Equal(tt.rrset[m.Index]) || m.Certificate != tt.chain[m.Depth] {
					t.Errorf("match %+v does not point into the inputs", m)
				}
			}
			for _, r := range res.Rejected {
				gotR = append(gotR, hit{r.Index, r.Depth})
				if r.Reason == "" {
					t.Errorf("rejection %+v has no reason", r)
				}
			}
			if !equalHits(gotM, tt.matches) {
				t.Errorf("matches = %v, want %v", gotM, tt.matches)
			}
			if !equalHits(gotR, tt.rejected) {
				t.Errorf("rejected = %v, want %v", gotR, tt.rejected)
			}
			if len(res.Unusable) != len(tt.unusable) {
				t.Errorf("unusable = %v, want %v", res.Unusable, tt.unusable)
			} else {
				for i := range res.Unusable {
					if res.Unusable[i] != tt.unusable[i] {
						t.Errorf("unusable = %v, want %v", res.Unusable, tt.unusable)
					}
				}
			}
			if s := res.String(); tt.ok == strings.Contains(s, "no record matches") {
				t.Errorf("String() = %q for OK() = %v", s, tt.ok)
			}
		})
	}
}

func equalHits[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
