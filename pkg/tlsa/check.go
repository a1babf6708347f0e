package tlsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
)

// LintKeyMismatch is the Check finding for a private key given with the
// chain that is not the leaf's: Postfix refuses to load such a chain.
const LintKeyMismatch = "key-mismatch"

// ChainCert is one certificate of the chain a server sends, with the file
// it was read from ("" when unknown).
type ChainCert struct {
	Cert *x509.Certificate
	File string
}

// FileKey is a private (or public) key given with the chain, with the file
// it was read from.
type FileKey struct {
	Key  crypto.PublicKey
	File string
}

// CheckInput is what Check examines: the chain the server sends, leaf first
// (at least one certificate); the private keys given with it, if any; the
// RRset; and the owners to check. With no Owners, every owner in RRset is
// checked (bare records, Owner "", form one group); with Owners, bare
// records are checked at every one of them and records at other owners are
// skipped.
type CheckInput struct {
	Chain  []ChainCert
	Keys   []FileKey
	RRset  []RR
	Owners []string
}

// Report is the result of Check, printed by WriteText or encoded as JSON.
// OK is false when some owner has no matching record (Mismatched is then
// true), a key does not belong to the leaf, or a lint reports an error.
type Report struct {
	OK       bool            `json:"ok"`
	Chain    []ChainEntry    `json:"chain"`
	Owners   []OwnerReport   `json:"owners"`
	Findings []ReportFinding `json:"findings"`
	Skipped  int             `json:"skipped_records"` // records at owners not checked

	Mismatched bool `json:"-"` // some owner has no matching record
}

// ChainEntry is one certificate of the served chain in a Report.
type ChainEntry struct {
	Depth   int    `json:"depth"`
	Subject string `json:"subject"`
	File    string `json:"file"`
}

// OwnerReport is the match result at one owner.
type OwnerReport struct {
	Owner   string         `json:"owner"`
	OK      bool           `json:"ok"`
	Records []RecordReport `json:"records"`
}

// RecordReport says what one record matched, and which equal certificates
// do not count (Association.Reason).
type RecordReport struct {
	Record   string    `json:"record"`
	Matches  []CertRef `json:"matches"`
	Rejected []CertRef `json:"rejected"`
}

// CertRef names a certificate of the chain a record equals.
type CertRef struct {
	Depth   int    `json:"depth"`
	Subject string `json:"subject"`
	Reason  string `json:"reason,omitempty"` // why the match does not count
}

// ReportFinding is a Finding in a Report, with the record in presentation
// form.
type ReportFinding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Owner    string   `json:"owner,omitempty"`
	Record   string   `json:"record,omitempty"`
	Message  string   `json:"message"`
}

// Owners returns the owner names "_<port>._tcp.<host>." of every host and
// port, hosts outermost, without duplicates. It returns Owner's error for
// the first bad host.
func Owners(hosts []string, ports []uint16) ([]string, error) {
	var out []string
	for _, h := range hosts {
		for _, p := range ports {
			o, err := Owner(p, h)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// SelectOwners picks the records of rrs to check at owners (see
// CheckInput): with owners, bare records are copied to every owner and
// records elsewhere are counted in skipped; without, every record is
// checked and the owners are those of rrs in order of first appearance.
func SelectOwners(rrs []RR, owners []string) (checked []RR, checkedOwners []string, skipped int) {
	if len(owners) == 0 {
		for _, rr := range rrs {
			if !slices.Contains(checkedOwners, rr.Owner) {
				checkedOwners = append(checkedOwners, rr.Owner)
			}
		}
		return rrs, checkedOwners, 0
	}
	for _, rr := range rrs {
		switch {
		case rr.Owner == "":
			for _, ow := range owners {
				x := rr
				x.Owner = ow
				checked = append(checked, x)
			}
		case slices.Contains(owners, rr.Owner):
			checked = append(checked, rr)
		default:
			skipped++
		}
	}
	return checked, owners, skipped
}

// CheckKeys returns the key-mismatch finding when keys is not empty and
// none of them is the key of leaf, else nil.
func CheckKeys(leaf *x509.Certificate, keys []FileKey) *ReportFinding {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if KeyMatches(leaf, k.Key) {
			return nil
		}
	}
	return &ReportFinding{ID: LintKeyMismatch, Severity: Error,
		Message: fmt.Sprintf("the %s in %q is not the key of the leaf %q (the first certificate): Postfix refuses such a chain",
			DescribeKey(keys[0].Key), keys[0].File, leaf.Subject.String())}
}

// CheckOwner matches the records of rrs at owner against chain (leaf first)
// and reports each record's matches. The finding is non-nil (no-match)
// when rrs holds no record at owner.
func CheckOwner(owner string, rrs []RR, chain []*x509.Certificate) (OwnerReport, *ReportFinding) {
	var recs []Record
	for _, rr := range rrs {
		if rr.Owner == owner {
			recs = append(recs, rr.Record)
		}
	}
	res := Match(chain, recs)
	oc := OwnerReport{Owner: owner, OK: res.OK(), Records: []RecordReport{}}
	for i, r := range recs {
		rc := RecordReport{Record: r.String(), Matches: []CertRef{}, Rejected: []CertRef{}}
		for _, m := range res.Matches {
			if m.Index == i {
				rc.Matches = append(rc.Matches, CertRef{Depth: m.Depth, Subject: m.Certificate.Subject.String()})
			}
		}
		for _, m := range res.Rejected {
			if m.Index == i {
				rc.Rejected = append(rc.Rejected, CertRef{Depth: m.Depth, Subject: m.Certificate.Subject.String(), Reason: m.Reason})
			}
		}
		oc.Records = append(oc.Records, rc)
	}
	if len(recs) > 0 {
		return oc, nil
	}
	return oc, &ReportFinding{ID: LintNoMatch, Severity: Error, Owner: owner,
		Message: "no TLSA record at this owner in --rrset: DANE senders treat the server as not using DANE, or defer mail if the owner should have records; publish 3 1 1 for the current key"}
}

// Check matches in.RRset against in.Chain at each owner, checks the keys
// and lints the records with the chain (see Lint). A chain without
// certificates yields a failed report with no owners checked.
func Check(in CheckInput) Report {
	rep := Report{OK: true}
	served := make([]*x509.Certificate, len(in.Chain))
	for i, c := range in.Chain {
		served[i] = c.Cert
		rep.Chain = append(rep.Chain, ChainEntry{Depth: i, Subject: c.Cert.Subject.String(), File: c.File})
	}
	if len(served) == 0 {
		rep.OK = false
		return rep
	}
	checked, owners, skipped := SelectOwners(in.RRset, in.Owners)
	rep.Skipped = skipped
	if f := CheckKeys(served[0], in.Keys); f != nil {
		rep.OK = false
		rep.Findings = append(rep.Findings, *f)
	}
	for _, ow := range owners {
		oc, f := CheckOwner(ow, checked, served)
		if !oc.OK {
			rep.OK, rep.Mismatched = false, true
		}
		if f != nil {
			rep.Findings = append(rep.Findings, *f)
		}
		rep.Owners = append(rep.Owners, oc)
	}
	for _, f := range Lint(LintInput{RRset: checked, Chain: served}) {
		rf := ReportFinding{ID: f.ID, Severity: f.Severity, Owner: f.Owner, Message: f.Message}
		if f.Record != nil {
			rf.Record = f.Record.String()
		}
		if f.Severity == Error {
			rep.OK = false
		}
		rep.Findings = append(rep.Findings, rf)
	}
	return rep
}

// WriteText prints the report for a person: the chain, each owner's
// result and records, the findings and a closing "ok:" or "FAIL:" line
// with Summary. It returns the first write error.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintln(&b, "; chain sent:")
	for _, e := range r.Chain {
		fmt.Fprintf(&b, ";   depth %d: %s (%s)\n", e.Depth, e.Subject, e.File)
	}
	for _, oc := range r.Owners {
		oc.writeText(&b)
	}
	if r.Skipped > 0 {
		fmt.Fprintf(&b, "; %s at other owners not checked\n", plural(r.Skipped, "record"))
	}
	for _, f := range r.Findings {
		where := f.Owner
		if f.Record != "" {
			where += " " + f.Record
		}
		fmt.Fprintf(&b, "%s %s %s: %s\n", f.Severity, f.ID, strings.TrimSpace(where), f.Message)
	}
	verdict := "ok"
	if !r.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %s\n", verdict, r.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

// writeText prints one owner's result and records.
func (oc OwnerReport) writeText(b *strings.Builder) {
	status := "match"
	if !oc.OK {
		status = "MISMATCH"
	}
	owner := oc.Owner
	if owner == "" {
		owner = "(records without owner)"
	}
	fmt.Fprintf(b, "%s: %s (%s)\n", owner, status, plural(len(oc.Records), "record"))
	for _, rc := range oc.Records {
		for _, m := range rc.Matches {
			fmt.Fprintf(b, "  %s: matches depth %d (%s)\n", rc.Record, m.Depth, m.Subject)
		}
		for _, m := range rc.Rejected {
			fmt.Fprintf(b, "  %s: equals depth %d (%s) but does not count: %s\n", rc.Record, m.Depth, m.Subject, m.Reason)
		}
		if len(rc.Matches) == 0 && len(rc.Rejected) == 0 {
			fmt.Fprintf(b, "  %s: matches nothing in the chain\n", rc.Record)
		}
	}
}

// Summary counts owners, mismatches, errors and warnings:
// "1 owner, 0 mismatched, 0 errors, 1 warning".
func (r Report) Summary() string {
	mismatch, errs, warns := 0, 0, 0
	for _, oc := range r.Owners {
		if !oc.OK {
			mismatch++
		}
	}
	for _, f := range r.Findings {
		if f.Severity == Error {
			errs++
		} else {
			warns++
		}
	}
	return fmt.Sprintf("%s, %d mismatched, %s, %s", plural(len(r.Owners), "owner"), mismatch, plural(errs, "error"), plural(warns, "warning"))
}

// plural returns "1 record" or "2 records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// CertForKey returns the first of certs that carries key (KeyMatches), or
// nil.
func CertForKey(certs []*x509.Certificate, key crypto.PublicKey) *x509.Certificate {
	for _, c := range certs {
		if KeyMatches(c, key) {
			return c
		}
	}
	return nil
}

// DescribeKey names a public or private key for messages:
// "ECDSA P-256 private key", "RSA 2048-bit public key", "Ed25519 private key".
func DescribeKey(k crypto.PublicKey) string {
	kind := "public key"
	if _, ok := k.(crypto.Signer); ok {
		kind = "private key"
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d-bit %s", k.N.BitLen(), kind)
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit %s", k.N.BitLen(), kind)
	case *ecdsa.PrivateKey:
		return fmt.Sprintf("ECDSA %s %s", k.Curve.Params().Name, kind)
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s %s", k.Curve.Params().Name, kind)
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519 " + kind
	}
	return fmt.Sprintf("%T %s", k, kind)
}
