package postfix

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// ErrNoMatch is matched (errors.Is) by the error of Verify when no record of
// the RRset authenticates the chain the server presented: a DANE sender
// would defer mail to this endpoint (RFC 7672 §2.2).
var ErrNoMatch = errors.New("no TLSA record matches the presented chain")

// Verification is the outcome of Verify: the chain an endpoint presented
// and which records authenticate it.
type Verification struct {
	Endpoint string              // the address dialed, "host:port"
	Host     string              // the TLSA base domain: SNI and DANE-TA reference identifier
	Chain    []*x509.Certificate // presented chain, leaf first
	State    tls.ConnectionState // the TLS connection state
	Records  []tlsa.Record       // the RRset tried, in the order given

	// Matches are the records that authenticate the chain, with the depth
	// of the certificate each names (0 is the leaf), in RRset order.
	Matches []tlsa.Association
	// Rejected are records whose data equals a presented certificate (or
	// its key) but that a sender does not accept there, with the reason:
	// DANE-EE beyond the leaf, DANE-TA on the leaf, a DANE-TA whose path to
	// the leaf does not validate or whose leaf does not carry Host.
	Rejected []tlsa.Rejection
	// Unusable are the RRset indexes of records a sender ignores whatever
	// the chain (usage 0/1, malformed data).
	Unusable []int
}

// OK reports whether at least one record authenticates the chain.
func (v *Verification) OK() bool { return len(v.Matches) > 0 }

// NoMatchError is the error of Verify when nothing matches; it matches
// ErrNoMatch.
type NoMatchError struct {
	Endpoint   string // "host:port" dialed
	Host       string
	Leaf       string // the leaf's subject
	LeafDigest string // lower-case hex SHA-256 of the leaf's SubjectPublicKeyInfo: the data of its 3 1 1 record
	Records    []tlsa.Record
	Rejected   []tlsa.Rejection
}

// Error names the endpoint, the presented leaf and its SPKI digest, every
// record tried and why near misses did not count.
func (e *NoMatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "starttls %s (host %q): %v: leaf %q has SPKI sha256 %s", e.Endpoint, e.Host, ErrNoMatch, e.Leaf, e.LeafDigest)
	if len(e.Records) == 0 {
		b.WriteString("; no records given")
	} else {
		recs := make([]string, len(e.Records))
		for i, r := range e.Records {
			recs[i] = r.String()
		}
		fmt.Fprintf(&b, "; records tried: %s", strings.Join(recs, ", "))
	}
	for _, r := range e.Rejected {
		fmt.Fprintf(&b, "; %s matches depth %d but does not count: %s", r.Record, r.Depth, r.Reason)
	}
	return b.String()
}

// Is reports whether target is ErrNoMatch.
func (e *NoMatchError) Is(target error) bool { return target == ErrNoMatch }

// Verify connects to addr with Handshake (host as SNI) and matches the
// presented chain against rrset as a DANE SMTP sender does (RFC 7672 §3,
// RFC 7671 §5):
//
//   - DANE-EE(3) matches the leaf only; names and validity dates are
//     ignored (RFC 7672 §3.1.1);
//   - DANE-TA(2) matches a certificate (selector 0) or key (selector 1)
//     the server presents at depth 1 or more; the chain must then validate
//     from that trust anchor to the leaf at the current time (signatures,
//     CA constraints, validity dates below the anchor, name constraints;
//     x509.Verify with the anchor as the only root) and the leaf must name host
//     (RFC 7672 §3.1.2, §3.2.2, §3.2.3);
//   - PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3).
//
// It returns the Verification and nil when at least one record matches. When
// none does it returns the Verification and a *NoMatchError (errors.Is
// ErrNoMatch). A failed connection or handshake returns a nil Verification
// and the error of Handshake. DNS is not consulted: the caller supplies the
// RRset.
func Verify(ctx context.Context, addr, host string, rrset []tlsa.Record) (*Verification, error) {
	chain, state, err := Handshake(ctx, addr, host)
	if err != nil {
		return nil, err
	}
	v := evaluate(chain, host, rrset, time.Now())
	v.Endpoint, v.State = addr, state
	if v.OK() {
		return v, nil
	}
	return v, v.noMatch()
}

// noMatch builds the NoMatchError of a verification without matches.
func (v *Verification) noMatch() *NoMatchError {
	e := &NoMatchError{Endpoint: v.Endpoint, Host: v.Host, Records: v.Records, Rejected: v.Rejected}
	if len(v.Chain) > 0 {
		e.LeafDigest = tlsa.SPKIDigestHex(v.Chain[0])
		e.Leaf = v.Chain[0].Subject.String()
	}
	return e
}

// evaluate matches chain against rrset for host at time now: tlsa.Match,
// then, for DANE-TA matches, path validation from the anchor and the leaf
// name check (see Verify).
func evaluate(chain []*x509.Certificate, host string, rrset []tlsa.Record, now time.Time) *Verification {
	res := tlsa.Match(chain, rrset)
	v := &Verification{
		Host:     host,
		Chain:    chain,
		Records:  rrset,
		Rejected: res.Rejected,
		Unusable: res.Unusable,
	}
	for _, m := range res.Matches {
		if m.Record.Usage == tlsa.UsageDANETA {
			if err := validateFrom(chain, m.Depth, now); err != nil {
				v.Rejected = append(v.Rejected, tlsa.Rejection{Association: m,
					Reason: fmt.Sprintf("the chain does not validate from this trust anchor to the leaf: %v", err)})
				continue
			}
			if err := checkName(chain[0], host); err != nil {
				v.Rejected = append(v.Rejected, tlsa.Rejection{Association: m, Reason: err.Error()})
				continue
			}
		}
		v.Matches = append(v.Matches, m)
	}
	return v
}

// validateFrom validates the leaf chain[0] up to the trust anchor chain[ta]
// through the other presented certificates at time now (RFC 5280 §6 with the
// anchor as the only root; RFC 7671 §5.2): signatures, CA constraints, path
// lengths, name constraints and the validity dates of every certificate
// below the anchor. The anchor's own dates are not checked: RFC 5280 §6.1.1
// takes a trust anchor as input, not as a certificate to validate, and
// OpenSSL's DANE (so Postfix) accepts an expired DANE-TA certificate; see
// TestVerifyAgreesWithOpenSSL. Any extended key usage is accepted; names are
// checked separately.
func validateFrom(chain []*x509.Certificate, ta int, now time.Time) error {
	// x509.Verify checks a root's dates from the parsed fields, never the
	// root's own signature: a shallow copy with open dates is the anchor
	// without its validity period. Raw is unchanged, so the key and the
	// name fields the path is built from stay the same.
	anchor := *chain[ta]
	anchor.NotBefore = time.Time{}
	anchor.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	roots := x509.NewCertPool()
	roots.AddCert(&anchor)
	inter := x509.NewCertPool()
	for i, c := range chain {
		if i != 0 && i != ta {
			inter.AddCert(c)
		}
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// CheckName reports whether leaf names host as a DANE-TA(2) match needs
// (RFC 7672 §3.2.3; the rule Evaluate applies, see checkName): nil when a
// subjectAltName dNSName (or, without any, the subject CN) is host or a
// wildcard for exactly its first label, else an error naming the leaf's
// names and host.
func CheckName(leaf *x509.Certificate, host string) error { return checkName(leaf, host) }

// checkName reports whether the leaf names host, as RFC 7672 §3.2.3 asks of
// DANE-TA(2) chains: a subjectAltName dNSName equal to host, or "*.<parent>"
// where the wildcard stands for exactly host's first label; the subject
// common name only when there is no dNSName. Comparison is case-insensitive
// and ignores a trailing dot.
func checkName(leaf *x509.Certificate, host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	names := leaf.DNSNames
	from := "subjectAltName dNSNames"
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
		from = "subject CN (no dNSName)"
	}
	for _, n := range names {
		if nameMatches(strings.ToLower(strings.TrimSuffix(n, ".")), h) {
			return nil
		}
	}
	return fmt.Errorf("the leaf's %s %q do not name %q (DANE-TA needs a name match, RFC 7672 §3.2.3)", from, names, host)
}

// nameMatches matches one presented name against host; "*" is only allowed
// as the whole left-most label and matches one label.
func nameMatches(name, host string) bool {
	if name == "" || host == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		_, parent, found := strings.Cut(host, ".")
		return found && rest != "" && !strings.Contains(rest, "*") && parent == rest
	}
	return !strings.Contains(name, "*") && name == host
}
