package tlsa

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const (
	owner25  = "_25._tcp.mail.example.com."
	owner465 = "_465._tcp.mail.example.com."
	ownerMX2 = "_25._tcp.mx2.example.com."
)

func TestOwners(t *testing.T) {
	tests := []struct {
		hosts   []string
		ports   []uint16
		want    []string
		wantErr bool
	}{
		{nil, []uint16{25}, nil, false},
		{[]string{"mail.example.com"}, []uint16{25, 465}, []string{owner25, owner465}, false},
		{[]string{"mail.example.com", "mx2.example.com", "mail.example.com."}, []uint16{25}, []string{owner25, ownerMX2}, false},
		{[]string{"bad host"}, []uint16{25}, nil, true},
	}
	for _, tt := range tests {
		got, err := Owners(tt.hosts, tt.ports)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Owners(%q, %v) = %q, %v; want %q, error %v", tt.hosts, tt.ports, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSelectOwners(t *testing.T) {
	r := Record{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	bare, at25, at465 := RR{Record: r}, RR{Owner: owner25, Record: r}, RR{Owner: owner465, Record: r}
	tests := []struct {
		name        string
		rrs         []RR
		owners      []string
		wantChecked []RR
		wantOwners  []string
		wantSkipped int
	}{
		{"owners from rrset", []RR{at465, at25, at465}, nil, []RR{at465, at25, at465}, []string{owner465, owner25}, 0},
		{"bare group", []RR{bare}, nil, []RR{bare}, []string{""}, 0},
		{"others skipped", []RR{at25, at465}, []string{owner25}, []RR{at25}, []string{owner25}, 1},
		{"bare copied", []RR{bare}, []string{owner25, owner465}, []RR{at25, at465}, []string{owner25, owner465}, 0},
		{"nothing at owner", []RR{at465}, []string{owner25}, nil, []string{owner25}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checked, owners, skipped := SelectOwners(tt.rrs, tt.owners)
			if !reflect.DeepEqual(checked, tt.wantChecked) || !reflect.DeepEqual(owners, tt.wantOwners) || skipped != tt.wantSkipped {
				t.Errorf("SelectOwners = %v, %q, %d; want %v, %q, %d", checked, owners, skipped, tt.wantChecked, tt.wantOwners, tt.wantSkipped)
			}
		})
	}
}

func TestCheckKeys(t *testing.T) {
	p := newPKI(t)
	other := newKey(t, "p256")
	tests := []struct {
		name string
		keys []FileKey
		want bool // a finding
	}{
		{"no keys", nil, false},
		{"leaf key", []FileKey{{p.leafKey, "key.pem"}}, false},
		{"leaf public key", []FileKey{{p.leafKey.Public(), "key.pem"}}, false},
		{"one of them", []FileKey{{other, "other.pem"}, {p.leafKey, "key.pem"}}, false},
		{"other key", []FileKey{{other, "other.pem"}}, true},
		{"issuer key", []FileKey{{p.intKey, "int.pem"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := CheckKeys(p.leaf, tt.keys)
			if (f != nil) != tt.want {
				t.Fatalf("CheckKeys = %+v, want finding %v", f, tt.want)
			}
			if f != nil && (f.ID != LintKeyMismatch || f.Severity != Error || !strings.Contains(f.Message, tt.keys[0].File) || !strings.Contains(f.Message, "ECDSA P-256 private key")) {
				t.Errorf("finding %+v: want key-mismatch error naming %q and the key", f, tt.keys[0].File)
			}
		})
	}
}

func TestCheckOwner(t *testing.T) {
	p := newPKI(t)
	chain := []*x509.Certificate{p.leaf, p.inter}
	ee := mustRecord(t, p.leaf, 3, 1, 1)
	ta := mustRecord(t, p.inter, 2, 1, 1)
	root := mustRecord(t, p.root, 2, 1, 1)
	eeOnTA := mustRecord(t, p.inter, 3, 1, 1) // DANE-EE names the leaf only
	tests := []struct {
		name        string
		rrs         []RR
		wantOK      bool
		wantFinding bool
		wantRecords []RecordReport
	}{
		{"3 1 1 matches leaf", []RR{{Owner: owner25, Record: ee}}, true, false,
			[]RecordReport{{Record: ee.String(), Matches: []CertRef{{0, "CN=mail.example.com", ""}}, Rejected: []CertRef{}}}},
		{"2 1 1 matches issuer", []RR{{Owner: owner25, Record: ta}, {Owner: owner465, Record: ee}}, true, false,
			[]RecordReport{{Record: ta.String(), Matches: []CertRef{{1, "CN=Test Intermediate", ""}}, Rejected: []CertRef{}}}},
		{"root not sent", []RR{{Owner: owner25, Record: root}}, false, false,
			[]RecordReport{{Record: root.String(), Matches: []CertRef{}, Rejected: []CertRef{}}}},
		{"3 x x on issuer does not count", []RR{{Owner: owner25, Record: eeOnTA}}, false, false, nil},
		{"no record at owner", []RR{{Owner: owner465, Record: ee}}, false, true, []RecordReport{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oc, f := CheckOwner(owner25, tt.rrs, chain)
			if oc.Owner != owner25 || oc.OK != tt.wantOK || (f != nil) != tt.wantFinding {
				t.Fatalf("CheckOwner = %+v, finding %+v; want OK %v, finding %v", oc, f, tt.wantOK, tt.wantFinding)
			}
			if f != nil && (f.ID != LintNoMatch || f.Owner != owner25) {
				t.Errorf("finding %+v, want no-match at %s", f, owner25)
			}
			if tt.wantRecords != nil && !reflect.DeepEqual(oc.Records, tt.wantRecords) {
				t.Errorf("records %+v, want %+v", oc.Records, tt.wantRecords)
			}
			if tt.name == "3 x x on issuer does not count" && (len(oc.Records) != 1 || len(oc.Records[0].Rejected) != 1 || oc.Records[0].Rejected[0].Reason == "") {
				t.Errorf("records %+v, want the issuer rejected with a reason", oc.Records)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	p := newPKI(t)
	served := []ChainCert{{p.leaf, "fullchain.pem"}, {p.inter, "fullchain.pem"}}
	ee := mustRecord(t, p.leaf, 3, 1, 1)
	stale := mustRecord(t, newCert(t, newKey(t, "p256"), certOpts{cn: "old"}, nil, nil), 3, 1, 1)
	full := mustRecord(t, p.leaf, 3, 1, 0)
	tests := []struct {
		name           string
		in             CheckInput
		wantOK         bool
		wantMismatched bool
		wantIDs        []string
		wantSummary    string
	}{
		{"ok", CheckInput{Chain: served, RRset: []RR{{Owner: owner25, Record: ee}}}, true, false, nil,
			"1 owner, 0 mismatched, 0 errors, 0 warnings"},
		{"warning keeps ok", CheckInput{Chain: served, RRset: []RR{{Owner: owner25, Record: full}}}, true, false, []string{LintFullData},
			"1 owner, 0 mismatched, 0 errors, 1 warning"},
		{"stale", CheckInput{Chain: served, RRset: []RR{{Owner: owner25, Record: stale}}}, false, true, []string{LintNoMatch},
			"1 owner, 1 mismatched, 1 error, 0 warnings"},
		{"missing owner", CheckInput{Chain: served, RRset: []RR{{Owner: owner25, Record: ee}}, Owners: []string{owner25, owner465}}, false, true,
			[]string{LintNoMatch}, "2 owners, 1 mismatched, 1 error, 0 warnings"},
		{"key mismatch", CheckInput{Chain: served, Keys: []FileKey{{p.intKey, "key.pem"}}, RRset: []RR{{Owner: owner25, Record: ee}}}, false, false,
			[]string{LintKeyMismatch}, "1 owner, 0 mismatched, 1 error, 0 warnings"},
		{"no chain", CheckInput{RRset: []RR{{Owner: owner25, Record: ee}}}, false, false, nil, "0 owners, 0 mismatched, 0 errors, 0 warnings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Check(tt.in)
			var ids []string
			for _, f := range rep.Findings {
				ids = append(ids, f.ID)
			}
			if rep.OK != tt.wantOK || rep.Mismatched != tt.wantMismatched || !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("Check: OK %v, mismatched %v, findings %q; want %v, %v, %q", rep.OK, rep.Mismatched, ids, tt.wantOK, tt.wantMismatched, tt.wantIDs)
			}
			if got := rep.Summary(); got != tt.wantSummary {
				t.Errorf("Summary() = %q, want %q", got, tt.wantSummary)
			}
			var b strings.Builder
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			verdict := "ok: "
			if !tt.wantOK {
				verdict = "FAIL: "
			}
			if last := lastLine(b.String()); last != verdict+tt.wantSummary {
				t.Errorf("WriteText ends %q, want %q", last, verdict+tt.wantSummary)
			}
			if len(tt.in.Chain) > 0 && !strings.Contains(b.String(), ";   depth 1: CN=Test Intermediate (fullchain.pem)") {
				t.Errorf("WriteText does not list the chain:\n%s", b.String())
			}
			js, err := json.Marshal(rep)
			if err != nil || strings.Contains(string(js), "Mismatched") || !strings.Contains(string(js), fmt.Sprintf(`"ok":%v`, tt.wantOK)) {
				t.Errorf("JSON %s, %v: want \"ok\" and no Mismatched", js, err)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
