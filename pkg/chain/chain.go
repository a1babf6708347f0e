// Package chain reads what ACME clients write (certbot's live/<name>
// directory, lego's certificates/<name>.crt, .issuer.crt, .key and .pem) and
// assembles the served chain: the one file per key algorithm that Postfix
// reads through smtpd_tls_chain_files (Postfix ≥ 3.4). The file holds the
// private key first, then the leaf, then its issuers, then the trust anchor
// if one is configured for a DANE-TA "2 x x" record (RFC 7671 §5.2.2).
//
// The package checks that the key and the leaf belong together, orders
// certificates by signature whatever the order of the files, finds the
// trust anchor in the chain or in a trust store, and writes files
// atomically with mode 0600. It imports only tlsa (the key digest) and
// internal/atomicfile from danehook.
package chain

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Algorithm names returned by (*Chain).Algorithm: one served file per key
// algorithm.
const (
	AlgorithmRSA     = "rsa"
	AlgorithmECDSA   = "ecdsa"
	AlgorithmEd25519 = "ed25519"
)

// Errors returned by Load and (*Chain) methods; test with errors.Is.
var (
	// ErrNoKey: the key file holds no private key.
	ErrNoKey = errors.New("no private key")
	// ErrKeyMismatch: the private key is not the key of the leaf
	// certificate. Returned wrapped in a *KeyMismatchError.
	ErrKeyMismatch = errors.New("private key does not match the leaf certificate")
)

// KeyMismatchError reports a private key that does not belong to the leaf
// certificate; Postfix would refuse such a chain ("key ... does not match
// the certificate"). errors.Is(err, ErrKeyMismatch) holds. The digests are
// tlsa.KeyDigest and tlsa.SPKIDigest: SHA-256 over the DER
// SubjectPublicKeyInfo, i.e. the data of a "3 1 1" TLSA record
// (RFC 6698 §2.1), so they can be compared with DNS.
type KeyMismatchError struct {
	KeyFile    string   // file the private key came from; "" when unknown
	CertFile   string   // file the leaf certificate came from; "" when unknown
	Subject    string   // the leaf's subject, e.g. "CN=mail.example.com"
	KeyDigest  [32]byte // SHA-256 of the key's SubjectPublicKeyInfo
	CertDigest [32]byte // SHA-256 of the leaf's SubjectPublicKeyInfo

	// KeySPKI is the former name of KeyDigest and holds the same value; it
	// stays only until pkg/deploy reads KeyDigest (not marked "Deprecated:"
	// so that staticcheck passes meanwhile).
	KeySPKI [32]byte
}

func (e *KeyMismatchError) Error() string {
	key, cert := "private key", fmt.Sprintf("certificate %q", e.Subject)
	if e.KeyFile != "" {
		key += fmt.Sprintf(" in %q", e.KeyFile)
	}
	if e.CertFile != "" {
		cert += fmt.Sprintf(" in %q", e.CertFile)
	}
	return fmt.Sprintf("%s (SPKI sha256 %x) does not match %s (SPKI sha256 %x)", key, e.KeyDigest, cert, e.CertDigest)
}

// Unwrap returns ErrKeyMismatch.
func (e *KeyMismatchError) Unwrap() error { return ErrKeyMismatch }

func newKeyMismatch(key crypto.Signer, keyFile string, leaf *x509.Certificate, certFile string) *KeyMismatchError {
	e := &KeyMismatchError{KeyFile: keyFile, CertFile: certFile, Subject: leaf.Subject.String()}
	e.CertDigest, _ = tlsa.SPKIDigest(leaf)
	e.KeyDigest, _ = tlsa.KeyDigest(key)
	e.KeySPKI = e.KeyDigest
	return e
}

// Chain is one served chain: a private key, its leaf certificate, the
// issuers from the leaf's issuer upwards, and an optional trust anchor.
type Chain struct {
	// Key is the private key: *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey.
	Key crypto.Signer
	// KeyBlock is the key's PEM block as read (PKCS #8 "PRIVATE KEY",
	// PKCS #1 "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"; Postfix reads all
	// three). PEM writes it unchanged; when nil, PEM writes Key as PKCS #8.
	KeyBlock *pem.Block
	// Leaf is the end-entity certificate whose public key is Key's.
	Leaf *x509.Certificate
	// Issuers are the certificates above the leaf, Issuers[0] having signed
	// the leaf; a self-signed root, if the files had one, is last.
	Issuers []*x509.Certificate
	// TA is the trust anchor for DANE-TA records, set by AppendTA; nil when
	// none is configured. It may be one of Issuers.
	TA *x509.Certificate
	// KeyFile and LeafFile name the files Key and Leaf were read from, for
	// messages; empty for a Chain built in memory.
	KeyFile, LeafFile string
}

// Load reads the private key from keyFile and all certificates from
// keyFile and certFiles (PEM, any order, duplicates counted once; a file may
// hold the key and certificates together, as lego's <name>.pem does), checks
// that the key is the leaf's key, and orders the certificates leaf first
// (see Order). The key check comes first, so a wrong key is reported as
// such rather than as a path problem.
//
// Errors name the file concerned: read and parse errors from ReadFile;
// ErrNoKey; an error when the key file holds two different keys or a
// certificate file holds another key; ErrNoCertificate; *KeyMismatchError
// (ErrKeyMismatch) naming the key file and the leaf's file; ErrUnrelated
// naming each stray certificate and its file.
func Load(keyFile string, certFiles ...string) (*Chain, error) {
	kb, err := ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	if len(kb.PrivateKeys) == 0 {
		return nil, fmt.Errorf("key file %q: %w", keyFile, ErrNoKey)
	}
	key, block := kb.PrivateKeys[0], kb.PrivateKeyBlocks[0]
	for _, k := range kb.PrivateKeys[1:] {
		if !samePublicKey(key, k) {
			return nil, fmt.Errorf("key file %q holds %d different private keys; want one", keyFile, len(kb.PrivateKeys))
		}
	}

	var certs []*x509.Certificate
	files := map[string]string{} // DER -> first file that held it
	add := func(file string, cs []*x509.Certificate) {
		for _, c := range cs {
			if _, ok := files[string(c.Raw)]; !ok {
				files[string(c.Raw)] = file
				certs = append(certs, c)
			}
		}
	}
	add(keyFile, kb.Certificates)
	for _, f := range certFiles {
		if filepath.Clean(f) == filepath.Clean(keyFile) {
			continue
		}
		b, err := ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, k := range b.PrivateKeys {
			if !samePublicKey(key, k) {
				return nil, fmt.Errorf("certificate file %q holds a private key other than the one in %q", f, keyFile)
			}
		}
		add(f, b.Certificates)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, quoteList(append([]string{keyFile}, certFiles...)))
	}

	p := buildPath(certs, key.Public())
	if p.noKey {
		// Name the certificate that would be the leaf without the key.
		guess := buildPath(certs, nil).path[0]
		return nil, newKeyMismatch(key, keyFile, guess, files[string(guess.Raw)])
	}
	if len(p.unrelated) > 0 {
		return nil, unrelatedError(p.path[0], p.unrelated, files)
	}
	return &Chain{
		Key:      key,
		KeyBlock: block,
		Leaf:     p.path[0],
		Issuers:  p.path[1:],
		KeyFile:  keyFile,
		LeafFile: files[string(p.path[0].Raw)],
	}, nil
}

// FromCertbotLineage loads a certbot lineage from its live directory dir
// (RENEWED_LINEAGE, e.g. /etc/letsencrypt/live/mail.example.com): the key
// from privkey.pem and the certificates from fullchain.pem (which is
// cert.pem followed by chain.pem). Those names are symbolic links into
// ../../archive/<name>/; errors name the link and its target. Errors as Load.
func FromCertbotLineage(dir string) (*Chain, error) {
	return Load(filepath.Join(dir, "privkey.pem"), filepath.Join(dir, "fullchain.pem"))
}

// FromLego loads what lego writes under <path>/certificates/: certPath is
// <name>.crt (leaf and issuers, or the leaf alone with --no-bundle), keyPath
// is <name>.key, issuerPath is <name>.issuer.crt ("" to skip it). These are
// LEGO_CERT_PATH, LEGO_CERT_KEY_PATH and LEGO_ISSUER_CERT_PATH (lego v4) or
// the LEGO_HOOK_* equivalents (lego v5). lego's <name>.pem, which holds
// certificates and key together, can be passed as keyPath with certPath "".
// Errors as Load.
func FromLego(certPath, keyPath, issuerPath string) (*Chain, error) {
	var files []string
	for _, f := range []string{certPath, issuerPath} {
		if f != "" {
			files = append(files, f)
		}
	}
	return Load(keyPath, files...)
}

// CheckKey reports whether Key is Leaf's key, comparing the DER
// SubjectPublicKeyInfo (and, where only the encoding differs, the key
// values). It returns nil on a match, a *KeyMismatchError (ErrKeyMismatch)
// naming KeyFile and LeafFile otherwise, and an error when Key or Leaf is nil.
func (c *Chain) CheckKey() error {
	if c.Key == nil {
		return fmt.Errorf("chain: %w", ErrNoKey)
	}
	if c.Leaf == nil {
		return fmt.Errorf("chain: %w", ErrNoCertificate)
	}
	if tlsa.KeyMatches(c.Leaf, c.Key) {
		return nil
	}
	return newKeyMismatch(c.Key, c.KeyFile, c.Leaf, c.LeafFile)
}

// Algorithm returns the key algorithm of the chain (of its key, else of its
// leaf): see KeyAlgorithm. Postfix serves one chain per algorithm, so this
// names the served file's slot.
func (c *Chain) Algorithm() string {
	switch {
	case c.Key != nil:
		return KeyAlgorithm(c.Key)
	case c.Leaf != nil:
		return KeyAlgorithm(c.Leaf.PublicKey)
	}
	return ""
}

// KeyAlgorithm returns AlgorithmRSA, AlgorithmECDSA or AlgorithmEd25519 for
// a public or private key of that kind, "" for anything else.
func KeyAlgorithm(key crypto.PublicKey) string {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	switch key.(type) {
	case *rsa.PublicKey:
		return AlgorithmRSA
	case *ecdsa.PublicKey:
		return AlgorithmECDSA
	case ed25519.PublicKey:
		return AlgorithmEd25519
	}
	return ""
}

// Served returns the certificates of the served chain in the order Postfix
// sends them: the leaf, the issuers, then TA unless it is already in the
// chain (no certificate appears twice). Nil when Leaf is nil.
func (c *Chain) Served() []*x509.Certificate {
	if c.Leaf == nil {
		return nil
	}
	out := append([]*x509.Certificate{c.Leaf}, c.Issuers...)
	if c.TA != nil && !contains(out, c.TA) {
		out = append(out, c.TA)
	}
	return out
}

func contains(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// PEM returns the served chain file: the private key block (KeyBlock as
// read, or Key as PKCS #8 "PRIVATE KEY" when KeyBlock is nil), then a
// "CERTIFICATE" block for each certificate of Served. That is the layout
// Postfix's smtpd_tls_chain_files expects: each key followed by its leaf and
// then the leaf's issuers.
//
// Errors: those of CheckKey (nothing is produced for a key that does not
// match the leaf); an error when KeyBlock does not hold Key or Key cannot be
// marshalled.
func (c *Chain) PEM() ([]byte, error) {
	if err := c.CheckKey(); err != nil {
		return nil, err
	}
	block := c.KeyBlock
	if block != nil {
		k, err := parsePrivateKey(block)
		if err != nil {
			return nil, fmt.Errorf("chain key block %q: %w", block.Type, err)
		}
		if !samePublicKey(k, c.Key) {
			return nil, fmt.Errorf("chain key block %q holds a different key than Key", block.Type)
		}
		block = &pem.Block{Type: block.Type, Bytes: block.Bytes}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(c.Key)
		if err != nil {
			return nil, fmt.Errorf("marshal private key as PKCS #8: %w", err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, block); err != nil {
		return nil, err
	}
	for _, cert := range c.Served() {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// WriteFile writes PEM's output atomically to path with mode 0600 (see the
// package-level WriteFile). Nothing is written when PEM fails.
func (c *Chain) WriteFile(path string) error {
	data, err := c.PEM()
	if err != nil {
		return fmt.Errorf("write chain %q: %w", path, err)
	}
	return WriteFile(path, data)
}

// quoteList renders names as "a", "b", "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func samePublicKey(a, b crypto.Signer) bool {
	k, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b.Public())
}
