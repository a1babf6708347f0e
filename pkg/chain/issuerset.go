package chain

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// TAIssuerSet is the trust anchor mode of an issuer set: the served chain
// carries the leaf's issuer (as TAIssuer), and every member of the set that
// can sign the lineage's leaves is published ahead as a DANE-TA 2 1 1
// record (RFC 7671 §5.2.2), so that a renewal onto another member of the
// set needs no DNS change.
const TAIssuerSet = "issuer-set"

// IssuerSetExpiryWarning is how long before a member's notAfter Stale
// warns that the CA will soon issue from another intermediate.
const IssuerSetExpiryWarning = 30 * 24 * time.Hour

// IssuerSet is the set of intermediate CA certificates an ACME CA may
// issue from (Let's Encrypt picks one at random per issuance: R10–R14 for
// RSA leaves, E5–E9 for ECDSA leaves, and the Generation Y intermediates).
//
// Selection rule (documented in README "Issuer sets"): a member is pinned
// for a lineage when the member's own public key algorithm is the
// lineage's leaf key algorithm. This is how Let's Encrypt issues since 2024
// (RSA intermediates sign RSA leaves, ECDSA intermediates ECDSA leaves); a
// CA that signs ECDSA leaves from an RSA intermediate (Pebble, Let's
// Encrypt's R3 before 2024) gets no members pinned for ECDSA lineages, and
// Stale says so — the chain's own issuer is still published, as for
// ta = "issuer".
type IssuerSet struct {
	// Source is the file or directory the set was read from.
	Source string
	// Certs are the members in the order read.
	Certs []*x509.Certificate
}

// LoadIssuerSet reads an issuer set from path: a PEM file or a directory of
// PEM files (*.pem, *.crt, *.cer, OpenSSL hash links), as LoadRootStore.
//
// Errors name path: unreadable, no certificates, or a member that is not a
// CA certificate (basicConstraints cA) or is self-signed (a root is never
// in the chain a server sends for ta = "issuer-set"; pin it with
// ta = "root").
func LoadIssuerSet(path string) (*IssuerSet, error) {
	rs, err := LoadRootStore(path)
	if err != nil {
		return nil, fmt.Errorf("issuer set: %w", err)
	}
	s := &IssuerSet{Source: path, Certs: rs.Certificates()}
	for _, c := range s.Certs {
		if !c.IsCA {
			return nil, fmt.Errorf("issuer set %q: %q is not a CA certificate: put only the CA's intermediates there", path, c.Subject.String())
		}
		if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
			return nil, fmt.Errorf("issuer set %q: %q is a root (self-signed), which the served chain never carries: put only intermediates there (ta = \"root\" pins a root)", path, c.Subject.String())
		}
	}
	return s, nil
}

// Members returns the members pinned for leaves of key algorithm alg
// (AlgorithmRSA, AlgorithmECDSA, …) that are valid at now: those whose own
// public key algorithm is alg.
func (s *IssuerSet) Members(alg string, now time.Time) []*x509.Certificate {
	if s == nil {
		return nil
	}
	var out []*x509.Certificate
	for _, c := range s.Certs {
		if KeyAlgorithm(c.PublicKey) != alg || now.Before(c.NotBefore) || now.After(c.NotAfter) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Contains reports whether ca is a member pinned for alg at now: one whose
// SubjectPublicKeyInfo, what a 2 1 1 record matches, is ca's.
func (s *IssuerSet) Contains(ca *x509.Certificate, alg string, now time.Time) bool {
	if ca == nil {
		return false
	}
	for _, m := range s.Members(alg, now) {
		if bytes.Equal(m.RawSubjectPublicKeyInfo, ca.RawSubjectPublicKeyInfo) {
			return true
		}
	}
	return false
}

// Stale returns, for a chain c the lineage serves or is about to, the
// reasons the set no longer covers what the CA issues from, each a
// sentence naming the certificate and what to do: c's issuer is not a
// member (its renewal onto that issuer is a DNS change and a delayed
// switch), no member is pinned for c's key algorithm, a member expires
// within IssuerSetExpiryWarning of now or has expired. Nil when the set is
// current.
func (s *IssuerSet) Stale(c *Chain, now time.Time) []string {
	if s == nil || c == nil || c.Leaf == nil {
		return nil
	}
	alg := KeyAlgorithm(c.Leaf.PublicKey)
	name := strings.ToUpper(alg)
	var out []string
	if len(s.Members(alg, now)) == 0 {
		out = append(out, fmt.Sprintf("issuer set %q has no %s intermediate valid now: no 2 1 1 record is published ahead for %s leaves; add the CA's %s intermediates", s.Source, name, name, name))
	}
	if len(c.Issuers) > 0 && !s.Contains(c.Issuers[0], alg, now) {
		iss := c.Issuers[0]
		why := "is not in"
		if KeyAlgorithm(iss.PublicKey) != alg {
			why = fmt.Sprintf("has a key of type %s, so by the key-type rule it is not pinned for %s leaves from", strings.ToUpper(KeyAlgorithm(iss.PublicKey)), name)
		}
		out = append(out, fmt.Sprintf("the chain of %q is issued by %q, which %s issuer set %q: every switch onto it waits for its 2 1 1 record to age; add the CA's current intermediates to the set", c.Leaf.Subject.String(), iss.Subject.String(), why, s.Source))
	}
	for _, m := range s.Certs {
		if KeyAlgorithm(m.PublicKey) != alg {
			continue
		}
		switch {
		case now.After(m.NotAfter):
			out = append(out, fmt.Sprintf("issuer set %q: member %q expired on %s: replace it with the CA's current intermediates", s.Source, m.Subject.String(), m.NotAfter.UTC().Format(time.DateOnly)))
		case m.NotAfter.Sub(now) < IssuerSetExpiryWarning:
			out = append(out, fmt.Sprintf("issuer set %q: member %q expires on %s: the CA will issue from another intermediate; add it to the set now so its 2 1 1 record ages before the first renewal onto it", s.Source, m.Subject.String(), m.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	return out
}
