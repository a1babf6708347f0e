package tlsa

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	p := newPKI(t)
	const owner = "_25._tcp.mail.example.com."
	rr := func(r Record) RR { return RR{Owner: owner, TTL: 300, Record: r} }
	ee311 := rr(mustRecord(t, p.leaf, 3, 1, 1))
	ee301 := rr(mustRecord(t, p.leaf, 3, 0, 1))
	ee302 := rr(mustRecord(t, p.leaf, 3, 0, 2))
	ee310 := rr(mustRecord(t, p.leaf, 3, 1, 0))
	ta211 := rr(mustRecord(t, p.inter, 2, 1, 1))
	ta210 := rr(mustRecord(t, p.inter, 2, 1, 0))
	ta201 := rr(mustRecord(t, p.inter, 2, 0, 1))
	taRoot := rr(mustRecord(t, p.root, 2, 1, 1))
	taLeaf := rr(mustRecord(t, p.leaf, 2, 1, 1))
	pkix111 := rr(mustRecord(t, p.leaf, 1, 1, 1))
	pkix011 := rr(mustRecord(t, p.inter, 0, 1, 1))
	stale := rr(mustRecord(t, newCert(t, newKey(t, "p256"), certOpts{cn: "old"}, nil, nil), 3, 1, 1))
	many := []RR{ee311}
	for i := 0; i < 12; i++ {
		many = append(many, rr(mustRecord(t, newCert(t, newKey(t, "ed25519"), certOpts{cn: fmt.Sprint(i)}, nil, nil), 3, 1, 1)))
	}
	served := []*x509.Certificate{p.leaf, p.inter}

	tests := []struct {
		name  string
		in    LintInput
		want  []string // "<id>" per finding in order
		sev   []Severity
		clean bool
	}{
		{"3 1 1 matching: clean", LintInput{RRset: []RR{ee311}, Chain: served}, nil, nil, true},
		{"3 1 1 without chain: clean", LintInput{RRset: []RR{ee311}}, nil, nil, true},
		{"3 0 1 warns", LintInput{RRset: []RR{ee301}, Chain: served}, []string{LintDANEEECert}, []Severity{Warning}, false},
		{"3 0 2 warns without chain", LintInput{RRset: []RR{ee302}}, []string{LintDANEEECert}, []Severity{Warning}, false},
		{"3 1 0 full data", LintInput{RRset: []RR{ee310}, Chain: served}, []string{LintFullData}, []Severity{Warning}, false},
		{"2 1 0 full data", LintInput{RRset: []RR{ta210}, Chain: served}, []string{LintFullData}, []Severity{Warning}, false},
		{"2 0 1 in chain warns", LintInput{RRset: []RR{ta201}, Chain: served}, []string{LintDANETACert}, []Severity{Warning}, false},
		{"2 0 1 warns without chain", LintInput{RRset: []RR{ta201}}, []string{LintDANETACert}, []Severity{Warning}, false},
		{"2 1 1 in chain: clean", LintInput{RRset: []RR{ta211}, Chain: served}, nil, nil, true},
		{"2 1 1 root not in chain", LintInput{RRset: []RR{taRoot}, Chain: served}, []string{LintTANotInChain, LintNoMatch}, []Severity{Error, Error}, false},
		{"2 1 1 root not in chain beside 3 1 1", LintInput{RRset: []RR{ee311, taRoot}, Chain: served}, []string{LintTANotInChain}, []Severity{Error}, false},
		{"2 1 1 root sent", LintInput{RRset: []RR{taRoot}, Chain: append(served, p.root)}, nil, nil, true},
		{"2 1 1 on the leaf", LintInput{RRset: []RR{ee311, taLeaf}, Chain: served}, []string{LintTANotInChain}, []Severity{Error}, false},
		{"2 1 1 root without chain: not checked", LintInput{RRset: []RR{taRoot}}, nil, nil, true},
		{"pkix usages", LintInput{RRset: []RR{pkix111, pkix011, ee311}, Chain: served}, []string{LintPKIXUsageSMTP, LintPKIXUsageSMTP}, []Severity{Error, Error}, false},
		{"pkix only: no match either", LintInput{RRset: []RR{pkix111}, Chain: served}, []string{LintPKIXUsageSMTP, LintNoMatch}, []Severity{Error, Error}, false},
		{"stale key: no match", LintInput{RRset: []RR{stale}, Chain: served}, []string{LintNoMatch}, []Severity{Error}, false},
		{"stale key and current: clean", LintInput{RRset: []RR{stale, ee311}, Chain: served}, nil, nil, true},
		{"12 records: clean", LintInput{RRset: many[:12], Chain: served}, nil, nil, true},
		{"13 records", LintInput{RRset: many, Chain: served}, []string{LintTooManyRecords}, []Severity{Warning}, false},
		{"13 records over two owners: clean", LintInput{RRset: append(slices.Clone(many[:12]), RR{Owner: "_465._tcp.mail.example.com.", Record: ee311.Record}), Chain: served}, nil, nil, true},
		{"no-match per owner", LintInput{RRset: []RR{ee311, {Owner: "_465._tcp.mail.example.com.", Record: stale.Record}}, Chain: served}, []string{LintNoMatch}, []Severity{Error}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Lint(tt.in)
			var got []string
			var sev []Severity
			for _, f := range fs {
				got = append(got, f.ID)
				sev = append(sev, f.Severity)
				if f.Message == "" || f.Owner == "" {
					t.Errorf("finding %+v lacks a message or owner", f)
				}
				if !strings.Contains(f.String(), f.ID) {
					t.Errorf("String() %q lacks the ID", f)
				}
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(sev, tt.sev) {
				t.Errorf("findings = %v %v, want %v %v\n%v", got, sev, tt.want, tt.sev, fs)
			}
		})
	}
}

// TestLintMessages checks the explanations say what the operator needs.
func TestLintMessages(t *testing.T) {
	p := newPKI(t)
	fs := Lint(LintInput{RRset: []RR{{Owner: "_25._tcp.mail.example.com.", Record: mustRecord(t, p.leaf, 3, 0, 1)}}})
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "ACME") || fs[0].Record == nil {
		t.Errorf("dane-ee-cert-selector finding = %+v, want one that mentions ACME and the record", fs)
	}
	fs = Lint(LintInput{RRset: []RR{{Owner: "_25._tcp.mail.example.com.", Record: mustRecord(t, p.leaf, 1, 1, 1)}}})
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "RFC 7672") {
		t.Errorf("pkix-usage-smtp finding = %+v, want one citing RFC 7672", fs)
	}
	if got := Error.String() + "/" + Warning.String(); got != "error/warning" {
		t.Errorf("severities = %q", got)
	}
}
