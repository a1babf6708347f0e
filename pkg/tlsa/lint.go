package tlsa

import (
	"crypto/x509"
	"fmt"
)

// Severity ranks a Finding.
type Severity int

// Severities: an Error breaks or would break mail delivery from DANE senders;
// a Warning is a risk or a waste that does not break it today.
const (
	Warning Severity = iota
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalText returns the String form, so JSON output reads "error"/"warning".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Lint identifiers, stable across releases; the package documentation
// explains each.
const (
	LintPKIXUsageSMTP  = "pkix-usage-smtp"
	LintDANEEECert     = "dane-ee-cert-selector"
	LintDANETACert     = "dane-ta-cert-selector"
	LintFullData       = "full-data"
	LintTooManyRecords = "too-many-records"
	LintTANotInChain   = "ta-not-in-chain"
	LintNoMatch        = "no-match"
)

// maxRecordsPerOwner is the most records at one owner before
// too-many-records warns.
const maxRecordsPerOwner = 12

// lintOwnerForNoOwner stands for the owner of bare records in Finding.String.
const lintOwnerForNoOwner = "(no owner)"

// Finding is one problem Lint found: a stable identifier (see the package
// documentation), its severity, the owner and, for a per-record finding, the
// record it is about, and a plain explanation for the operator.
type Finding struct {
	ID       string
	Severity Severity
	Owner    string  // the RR's owner, "" for bare records
	Record   *Record // nil for findings about a whole owner
	Message  string
}

// String returns "error no-match _25._tcp.mail.example.com.: …" or, for a
// record, "warning full-data _25._tcp.… 3 1 0 30…: …".
func (f Finding) String() string {
	where := f.Owner
	if where == "" {
		where = lintOwnerForNoOwner
	}
	if f.Record != nil {
		where += " " + clip(f.Record.String())
	}
	return fmt.Sprintf("%s %s %s: %s", f.Severity, f.ID, where, f.Message)
}

// LintInput is what Lint examines: the RRset (records at one or more owners;
// bare records with Owner "" form one group) and, optionally, the chain the
// server sends, leaf first. Without a chain, the lints that need one
// (ta-not-in-chain, no-match) are not run.
type LintInput struct {
	RRset []RR
	Chain []*x509.Certificate
}

// Lint returns the findings for in, ordered by owner (first appearance), then
// per-record findings in RRset order, then per-owner findings. It never
// fails: malformed records are reported by Parse and Record.Validate, not here.
func Lint(in LintInput) []Finding {
	var out []Finding
	var owners []string
	groups := map[string][]int{}
	for i, rr := range in.RRset {
		if _, ok := groups[rr.Owner]; !ok {
			owners = append(owners, rr.Owner)
		}
		groups[rr.Owner] = append(groups[rr.Owner], i)
	}
	for _, owner := range owners {
		idx := groups[owner]
		recs := make([]Record, len(idx))
		for k, i := range idx {
			recs[k] = in.RRset[i].Record
		}
		var res Result
		if in.Chain != nil {
			res = Match(in.Chain, recs)
		}
		for k := range recs {
			rec := &recs[k]
			add := func(id string, sev Severity, msg string) {
				out = append(out, Finding{ID: id, Severity: sev, Owner: owner, Record: rec, Message: msg})
			}
			switch rec.Usage {
			case UsagePKIXTA, UsagePKIXEE:
				add(LintPKIXUsageSMTP, Error, fmt.Sprintf("usage %d (PKIX) records are unusable for SMTP: RFC 7672 §3.1.3 says senders treat them as unusable, so they never authenticate the server; publish 3 1 1 (the server key) or 2 1 1 (the issuer's key) instead", rec.Usage))
			case UsageDANEEE:
				if rec.Selector == SelectorCert {
					add(LintDANEEECert, Warning, "3 0 x hashes the whole certificate, which changes on every renewal even when the key is reused; with an ACME CA (Let's Encrypt and others: 90 days or less) each renewal breaks this record unless a new one is published and aged first; publish 3 1 1 (the key) and reuse the key on renewal")
				}
			case UsageDANETA:
				if rec.Selector == SelectorCert {
					add(LintDANETACert, Warning, "2 0 x hashes the whole CA certificate; an ACME CA (Let's Encrypt and others) re-issues and cross-signs its intermediates with the same key and picks among several at random per issuance, so this record stops matching with no change on your side; publish 2 1 1 (the CA's key), and with ta = \"issuer-set\" every intermediate ahead")
				}
				if in.Chain != nil && !taInChain(res, k) {
					add(LintTANotInChain, Error, taNotInChainMessage(res, k))
				}
			}
			if rec.MatchingType == MatchFull {
				add(LintFullData, Warning, fmt.Sprintf("matching type 0 publishes the whole %s (%d bytes) instead of a digest; the RRset grows large and may need TCP; use matching type 1 (SHA-256): %d %d 1", selectorNoun(rec.Selector), len(rec.Data), rec.Usage, rec.Selector))
			}
		}
		ownerFinding := func(id string, sev Severity, msg string) {
			out = append(out, Finding{ID: id, Severity: sev, Owner: owner, Message: msg})
		}
		if len(recs) > maxRecordsPerOwner {
			ownerFinding(LintTooManyRecords, Warning, fmt.Sprintf("%d records at one owner (more than %d): large RRsets are truncated over UDP and some senders give up comparing them; remove records no longer needed", len(recs), maxRecordsPerOwner))
		}
		if in.Chain != nil && !res.OK() {
			ownerFinding(LintNoMatch, Error, "no usable record matches the served chain: every DANE sender will defer mail to this server; publish a record for the current key (3 1 1) and wait 2 TTLs before serving the chain")
		}
	}
	return out
}

// taInChain reports whether the DANE-TA record at RRset index k matched an
// issuer certificate in the chain.
func taInChain(res Result, k int) bool {
	for _, m := range res.Matches {
		if m.Index == k {
			return true
		}
	}
	return false
}

// taNotInChainMessage explains why the DANE-TA record at index k matched no
// issuer in the chain.
func taNotInChainMessage(res Result, k int) string {
	for _, r := range res.Rejected {
		if r.Index == k {
			return fmt.Sprintf("the trust anchor matches %s at depth %d, but %s; append the trust anchor certificate to the served chain (after the intermediates)", subject(r.Certificate), r.Depth, r.Reason)
		}
	}
	return "the trust anchor this record names is not in the chain the server sends; senders only see that chain, so append the trust anchor certificate to it (after the intermediates), RFC 7671 §5.2.2"
}

// selectorNoun names what a selector selects.
func selectorNoun(s uint8) string {
	if s == SelectorSPKI {
		return "public key"
	}
	return "certificate"
}
