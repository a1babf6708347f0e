package tlsa

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
)

// Association is one record of an RRset matching one certificate of a chain.
type Association struct {
	Record      Record
	Index       int               // position of Record in the RRset, from 0
	Depth       int               // position of Certificate in the chain: 0 is the leaf
	Certificate *x509.Certificate // the certificate (or its key) the record names
}

// String returns "3 1 1 <hex> matched depth 0 (CN=mail.example.com)".
func (a Association) String() string {
	return fmt.Sprintf("%s matched depth %d (%s)", a.Record, a.Depth, subject(a.Certificate))
}

// Rejection is a record whose data equals a certificate's (or key's) in the
// chain but which a sender does not accept there, with the reason.
type Rejection struct {
	Association
	Reason string
}

// Result tells which records of an RRset match which certificates of a chain
// and why others do not (RFC 7671 §5, RFC 7672 §3).
type Result struct {
	// Matches lists the usable records that match, in RRset order: DANE-EE
	// records matching the leaf, DANE-TA records matching an issuer of the
	// leaf that the server sends.
	Matches []Association
	// Rejected lists records whose data equals something in the chain where
	// a sender does not accept it: DANE-EE beyond the leaf, DANE-TA on the
	// leaf or on a certificate the leaf does not chain to by signature, and
	// PKIX-TA/PKIX-EE records, unusable for SMTP.
	Rejected []Rejection
	// Unusable lists, by RRset index, the records a sender ignores whatever
	// the chain: usage 0 or 1 (RFC 7672 §3.1.3), parameters out of range, or
	// malformed data (see Record.Validate).
	Unusable []int
}

// OK reports whether at least one record matches, that is whether a DANE
// sender would authenticate the chain.
func (r Result) OK() bool { return len(r.Matches) > 0 }

// String explains the result in lines: one per match, rejection and unusable
// record, or "no record matches" when nothing does.
func (r Result) String() string {
	var b strings.Builder
	for _, m := range r.Matches {
		fmt.Fprintf(&b, "record %d: %s\n", m.Index+1, m)
	}
	for _, m := range r.Rejected {
		fmt.Fprintf(&b, "record %d: %s matches depth %d (%s) but does not count: %s\n",
			m.Index+1, m.Record, m.Depth, subject(m.Certificate), m.Reason)
	}
	if len(r.Matches) == 0 {
		b.WriteString("no record matches the chain\n")
	}
	return b.String()
}

// Match compares rrset with chain, the certificates a server sends, leaf
// first, as a DANE SMTP sender does (RFC 7671 §5, RFC 7672 §3.1):
//
//   - DANE-EE(3) matches the leaf only; names and validity dates are ignored
//     (RFC 7671 §5.1);
//   - DANE-TA(2) matches a certificate (selector 0) or its key (selector 1)
//     at depth 1 or more, provided the leaf chains to it by signature through
//     the certificates sent; a DANE-TA record matching the leaf is not a trust
//     anchor match (RFC 7671 §5.2.2). Names and dates are not checked here:
//     a sender also checks the leaf's names against the TLSA base domain
//     (RFC 7672 §3.2.3);
//   - PKIX-TA(0) and PKIX-EE(1) never match: SMTP senders treat them as
//     unusable (RFC 7672 §3.1.3).
//
// Records that fail Record.Validate are unusable. An empty chain or RRset
// gives a Result whose OK is false.
func Match(chain []*x509.Certificate, rrset []Record) Result {
	var res Result
	var linked map[int]bool // depths the leaf chains to, computed on demand
	for i, rec := range rrset {
		if rec.Validate() != nil || rec.Usage == UsagePKIXTA || rec.Usage == UsagePKIXEE {
			res.Unusable = append(res.Unusable, i)
		}
		for d, cert := range chain {
			if cert == nil || !matches(rec, cert) {
				continue
			}
			a := Association{Record: rec, Index: i, Depth: d, Certificate: cert}
			reason := ""
			switch {
			case rec.Validate() != nil:
				reason = "the record is malformed"
			case rec.Usage == UsagePKIXTA || rec.Usage == UsagePKIXEE:
				reason = "usage 0/1 (PKIX) records are unusable for SMTP (RFC 7672 §3.1.3)"
			case rec.Usage == UsageDANEEE && d > 0:
				reason = "DANE-EE (3) matches the leaf only, at depth 0"
			case rec.Usage == UsageDANETA && d == 0:
				reason = "DANE-TA (2) names an issuer; a match on the leaf is not a trust anchor match (RFC 7671 §5.2.2)"
			case rec.Usage == UsageDANETA:
				if linked == nil {
					linked = issuersOfLeaf(chain)
				}
				if !linked[d] {
					reason = "the leaf does not chain to this certificate by signature through the certificates sent"
				}
			}
			if reason != "" {
				res.Rejected = append(res.Rejected, Rejection{Association: a, Reason: reason})
				continue
			}
			res.Matches = append(res.Matches, a)
		}
	}
	return res
}

// matches reports whether rec's association data equals cert's content for
// rec's selector and matching type.
func matches(rec Record, cert *x509.Certificate) bool {
	content := cert.Raw
	if rec.Selector == SelectorSPKI {
		content = cert.RawSubjectPublicKeyInfo
	} else if rec.Selector != SelectorCert {
		return false
	}
	if len(content) == 0 || rec.MatchingType > MatchSHA512 {
		return false
	}
	data, err := associate(content, rec.MatchingType)
	return err == nil && bytes.Equal(data, rec.Data)
}

// issuersOfLeaf returns the depths of the certificates in chain that the leaf
// (depth 0) chains to by signatures, through certificates of chain in any
// order, as senders build the path from the untrusted certificates sent.
func issuersOfLeaf(chain []*x509.Certificate) map[int]bool {
	seen := map[int]bool{}
	frontier := []int{0}
	for len(frontier) > 0 {
		c := chain[frontier[0]]
		frontier = frontier[1:]
		for j, p := range chain {
			if j == 0 || seen[j] || p == nil || c == nil {
				continue
			}
			if bytes.Equal(c.RawIssuer, p.RawSubject) && c.CheckSignatureFrom(p) == nil {
				seen[j] = true
				frontier = append(frontier, j)
			}
		}
	}
	return seen
}

// subject names cert for messages: its subject, or its serial when the
// subject is empty.
func subject(cert *x509.Certificate) string {
	if cert == nil {
		return "no certificate"
	}
	if s := cert.Subject.String(); s != "" {
		return s
	}
	return "serial " + cert.SerialNumber.String()
}
