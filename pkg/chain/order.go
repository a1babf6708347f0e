package chain

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Errors returned by Order and Load; test with errors.Is.
var (
	// ErrNoCertificate: no certificate was given or found in the files.
	ErrNoCertificate = errors.New("no certificate")
	// ErrUnrelated: a certificate does not lie on the path from the leaf
	// upwards (a stale intermediate, another lineage's certificate, a second
	// leaf). The error names its subject.
	ErrUnrelated = errors.New("certificate is not part of the chain")
)

// Order sorts certs into a certification path (RFC 5280 §6.1): the leaf
// first, then issuers[0] that signed the leaf, issuers[1] that signed
// issuers[0], and so on, whatever the order of certs. Identical certificates
// are counted once.
//
// A certificate c issued certificate d when d's issuer name equals c's
// subject name (byte for byte, as crypto/x509 compares them), d's authority
// key identifier equals c's subject key identifier when both are present
// (RFC 5280 §4.2.1.1), and c's key verifies d's signature. A self-signed
// certificate ends the path, so an included root stays last. The leaf is the
// certificate that issued no other certificate; when several could be, the
// one with the longest path wins and ties go to the earliest in certs.
// Paths of any length are found, including cross-signed certificates.
//
// Errors: ErrNoCertificate for an empty slice; ErrUnrelated, naming each
// certificate's subject, when some certificates are not on the leaf's path.
func Order(certs []*x509.Certificate) (leaf *x509.Certificate, issuers []*x509.Certificate, err error) {
	p := buildPath(certs, nil)
	if len(p.path) == 0 {
		return nil, nil, ErrNoCertificate
	}
	if len(p.unrelated) > 0 {
		return nil, nil, unrelatedError(p.path[0], p.unrelated, nil)
	}
	return p.path[0], p.path[1:], nil
}

type pathResult struct {
	path      []*x509.Certificate // leaf first; empty when certs was empty or nothing matched the key
	unrelated []*x509.Certificate // in input order
	noKey     bool                // a key was given and no certificate that could be a leaf carries it
}

// buildPath orders certs as Order does. When pub is not nil the leaf must
// carry pub (compared by SPKI) and must not have issued another certificate
// of the set; if no certificate qualifies, noKey is set.
func buildPath(certs []*x509.Certificate, pub crypto.PublicKey) pathResult {
	certs = dedupe(certs)
	n := len(certs)
	if n == 0 {
		return pathResult{}
	}
	parents := make([][]int, n)
	isParent := make([]bool, n)
	for i, c := range certs {
		if selfSigned(c) {
			continue // nothing sits above a self-signed certificate
		}
		for j, p := range certs {
			if i != j && issued(p, c) {
				parents[i] = append(parents[i], j)
				isParent[j] = true
			}
		}
	}

	var candidates []int
	for i, c := range certs {
		if isParent[i] {
			continue
		}
		if pub != nil && !tlsa.KeyMatches(c, pub) {
			continue
		}
		candidates = append(candidates, i)
	}
	if pub != nil && len(candidates) == 0 {
		return pathResult{noKey: true}
	}
	if len(candidates) == 0 { // every certificate issued another: a cross-signing loop
		for i := range certs {
			candidates = append(candidates, i)
		}
	}

	onPath := make([]bool, n)
	var best []int
	for _, c := range candidates {
		if p := longestPath(c, parents, onPath); len(p) > len(best) {
			best = p
		}
	}
	res := pathResult{}
	used := make([]bool, n)
	for _, i := range best {
		res.path = append(res.path, certs[i])
		used[i] = true
	}
	for i, c := range certs {
		if !used[i] {
			res.unrelated = append(res.unrelated, c)
		}
	}
	return res
}

// longestPath returns the longest chain of indexes starting at i and
// following parents, never visiting a certificate twice. The sets are small
// (a handful of certificates with at most two parents each), so a depth-first
// search is cheap.
func longestPath(i int, parents [][]int, onPath []bool) []int {
	onPath[i] = true
	var best []int
	for _, j := range parents[i] {
		if onPath[j] {
			continue
		}
		if p := longestPath(j, parents, onPath); len(p) > len(best) {
			best = p
		}
	}
	onPath[i] = false
	return append([]int{i}, best...)
}

func dedupe(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	seen := make(map[string]bool, len(certs))
	for _, c := range certs {
		if c == nil || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		out = append(out, c)
	}
	return out
}

// issued reports whether parent issued child: names chain, key identifiers
// agree where both are present, and parent's key verifies child's signature.
func issued(parent, child *x509.Certificate) bool {
	if bytes.Equal(parent.Raw, child.Raw) || !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	if len(child.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 &&
		!bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId) {
		return false
	}
	return child.CheckSignatureFrom(parent) == nil
}

// selfSigned reports whether c is signed by its own key under its own name
// (a root). A SHA-1 self-signature still counts: nobody verifies a root's
// self-signature, and old roots carry them.
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return false
	}
	if len(c.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId) {
		return false
	}
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	var insecure x509.InsecureAlgorithmError
	return err == nil || errors.As(err, &insecure)
}

// unrelatedError describes each certificate off the leaf's path, with the
// file it came from when files knows it.
func unrelatedError(leaf *x509.Certificate, unrelated []*x509.Certificate, files map[string]string) error {
	descs := make([]string, 0, len(unrelated))
	for _, c := range unrelated {
		d := fmt.Sprintf("%q (issuer %q", c.Subject.String(), c.Issuer.String())
		if f := files[string(c.Raw)]; f != "" {
			d += fmt.Sprintf(", in %q", f)
		}
		descs = append(descs, d+")")
	}
	return fmt.Errorf("%w: %s does not lie on the path from leaf %q up to its root",
		ErrUnrelated, strings.Join(descs, ", "), leaf.Subject.String())
}
