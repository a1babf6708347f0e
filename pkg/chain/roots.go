package chain

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Trust anchor modes for AppendTA: which CA certificate a DANE-TA "2 x x"
// record names (RFC 7671 §5.2.2) and the served chain therefore carries.
const (
	TANone   = ""       // no trust anchor
	TAIssuer = "issuer" // the leaf's issuer, already in the chain
	TARoot   = "root"   // the root above the chain's last certificate
)

// ErrTANotFound: the trust anchor a mode asks for is neither in the chain
// nor in the trust store. Test with errors.Is.
var ErrTANotFound = errors.New("trust anchor not found")

// ErrNoRoots: no trust store file or directory with certificates was found.
var ErrNoRoots = errors.New("no trust store certificates found")

// System trust store locations, tried in order when LoadRootStore is called
// without files: the first file that holds certificates is used; the
// directories are read when no file did. SSL_CERT_FILE and SSL_CERT_DIR
// (colon-separated) replace them, as for OpenSSL and crypto/x509.
var (
	systemRootFiles = []string{
		"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine
		"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
		"/etc/ssl/ca-bundle.pem",                            // openSUSE
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL, CentOS
		"/etc/ssl/cert.pem",                                 // Alpine, BSD
	}
	systemRootDirs = []string{"/etc/ssl/certs", "/etc/pki/tls/certs"}
)

// RootStore is a set of CA certificates (a trust store) indexed by subject.
// The zero value is not usable; use NewRootStore or LoadRootStore.
type RootStore struct {
	certs     []*x509.Certificate
	bySubject map[string][]*x509.Certificate
	seen      map[string]bool
	// Sources lists the files and directories the certificates came from,
	// for messages.
	Sources []string
}

// NewRootStore returns a store holding certs (duplicates counted once).
func NewRootStore(certs ...*x509.Certificate) *RootStore {
	s := &RootStore{bySubject: map[string][]*x509.Certificate{}, seen: map[string]bool{}}
	for _, c := range certs {
		s.Add(c)
	}
	return s
}

// Add puts c into the store unless an identical certificate is there.
func (s *RootStore) Add(c *x509.Certificate) {
	if c == nil || s.seen[string(c.Raw)] {
		return
	}
	s.seen[string(c.Raw)] = true
	s.certs = append(s.certs, c)
	s.bySubject[string(c.RawSubject)] = append(s.bySubject[string(c.RawSubject)], c)
}

// Len returns the number of certificates in the store.
func (s *RootStore) Len() int { return len(s.certs) }

// Certificates returns the store's certificates in the order they were added.
func (s *RootStore) Certificates() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.certs...)
}

func (s *RootStore) describe() string {
	if len(s.Sources) == 0 {
		return fmt.Sprintf("the trust store (%d certificates)", len(s.certs))
	}
	return fmt.Sprintf("the trust store %s (%d certificates)", quoteList(s.Sources), len(s.certs))
}

// LoadRootStore reads CA certificates from files, each a PEM file (every
// "CERTIFICATE" and OpenSSL "TRUSTED CERTIFICATE" block is taken, other
// blocks are ignored) or a directory of them (*.pem, *.crt, *.cer and
// OpenSSL hash links such as 4042bcee.0). With no files it reads the system
// store: $SSL_CERT_FILE or the first of /etc/ssl/certs/ca-certificates.crt
// and the other distributions' bundles that exists, and $SSL_CERT_DIR or
// /etc/ssl/certs when no bundle file was found or SSL_CERT_DIR is set.
//
// Errors name the file: an unreadable or unparsable given file, a given file
// or directory with no certificates; for the system store, ErrNoRoots when
// nothing was found (install ca-certificates or configure ca_file).
func LoadRootStore(files ...string) (*RootStore, error) {
	s := NewRootStore()
	if len(files) == 0 {
		return loadSystemRoots(s)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
		if fi.IsDir() {
			_, err = s.addDir(f)
		} else {
			_, err = s.addFile(f, true)
		}
		if err != nil {
			return nil, err
		}
		s.Sources = append(s.Sources, f)
	}
	return s, nil
}

func loadSystemRoots(s *RootStore) (*RootStore, error) {
	files, dirs := systemRootFiles, systemRootDirs
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	dirEnv := os.Getenv("SSL_CERT_DIR")
	if dirEnv != "" {
		dirs = filepath.SplitList(dirEnv)
	}
	for _, f := range files {
		if n, err := s.addFile(f, false); err == nil && n > 0 {
			s.Sources = append(s.Sources, f)
			break
		}
	}
	if s.Len() == 0 || dirEnv != "" {
		for _, d := range dirs {
			if n, err := s.addDir(d); err == nil && n > 0 {
				s.Sources = append(s.Sources, d)
			}
		}
	}
	if s.Len() == 0 {
		return nil, fmt.Errorf("%w (looked in %s and %s); install ca-certificates or set ca_file",
			ErrNoRoots, quoteList(files), quoteList(dirs))
	}
	return s, nil
}

// addFile adds every certificate of the PEM file at path and returns how
// many it parsed. When strict, a certificate that does not parse or a file
// without certificates is an error; otherwise bad certificates are skipped.
func (s *RootStore) addFile(path string, strict bool) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("trust store: %w", err)
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		der := block.Bytes
		switch block.Type {
		case "CERTIFICATE":
		case "TRUSTED CERTIFICATE": // the certificate, then OpenSSL's trust settings
			var rv asn1.RawValue
			if _, err := asn1.Unmarshal(der, &rv); err == nil {
				der = rv.FullBytes
			}
		default:
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			if strict {
				return n, fmt.Errorf("trust store %q: certificate %d: %w", path, n+1, err)
			}
			continue
		}
		n++
		s.Add(c)
	}
	if n == 0 && strict {
		return 0, fmt.Errorf("trust store %q: %w", path, ErrNoCertificate)
	}
	return n, nil
}

var hashLink = regexp.MustCompile(`^[0-9a-f]{8}\.[0-9]+$`)

// addDir adds the certificates of every certificate file in dir, skipping
// files that do not parse (a directory such as /etc/ssl/certs also holds
// other things), and returns how many it parsed.
func (s *RootStore) addDir(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("trust store: %w", err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".pem"), strings.HasSuffix(name, ".crt"),
			strings.HasSuffix(name, ".cer"), hashLink.MatchString(name):
		default:
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		k, _ := s.addFile(p, false) // a stray file must not hide the others
		n += k
	}
	if n == 0 {
		return 0, fmt.Errorf("trust store directory %q: %w", dir, ErrNoCertificate)
	}
	return n, nil
}

// FindRoot returns the certificate that issued last, the top certificate of
// a served chain, for a DANE-TA record naming the root (RFC 7671 §5.2.2).
// When last is self-signed it is its own root. Otherwise the candidate in
// roots must have last's issuer name as subject, its subject key identifier
// must equal last's authority key identifier when both are present (RFC 5280
// §4.2.1.1), and its key must verify last's signature; among several (a
// re-issued root) a self-signed one currently valid and expiring last wins.
// roots nil means the system store (LoadRootStore()).
//
// Errors: ErrTANotFound naming the issuer, its key identifier and the store,
// with a hint to configure ca_file; errors of LoadRootStore.
func FindRoot(last *x509.Certificate, roots *RootStore) (*x509.Certificate, error) {
	if last == nil {
		return nil, ErrNoCertificate
	}
	if selfSigned(last) {
		return last, nil
	}
	if roots == nil {
		var err error
		if roots, err = LoadRootStore(); err != nil {
			return nil, fmt.Errorf("find root of %q: %w", last.Subject.String(), err)
		}
	}
	var best *x509.Certificate
	now := time.Now()
	for _, c := range roots.bySubject[string(last.RawIssuer)] {
		if len(last.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 && !bytes.Equal(last.AuthorityKeyId, c.SubjectKeyId) {
			continue
		}
		if last.CheckSignatureFrom(c) != nil {
			continue
		}
		if best == nil || rootRank(c, now) > rootRank(best, now) ||
			rootRank(c, now) == rootRank(best, now) && c.NotAfter.After(best.NotAfter) {
			best = c
		}
	}
	if best == nil {
		kid := ""
		if len(last.AuthorityKeyId) > 0 {
			kid = fmt.Sprintf(" and key identifier %x", last.AuthorityKeyId)
		}
		return nil, fmt.Errorf("%w: no certificate with subject %q%s that signed %q in %s; add the issuing root to the ca_file setting",
			ErrTANotFound, last.Issuer.String(), kid, last.Subject.String(), roots.describe())
	}
	return best, nil
}

func rootRank(c *x509.Certificate, now time.Time) int {
	r := 0
	if selfSigned(c) {
		r += 2
	}
	if !now.Before(c.NotBefore) && !now.After(c.NotAfter) {
		r++
	}
	return r
}

// AppendTA sets c.TA for mode: TANone clears it; TAIssuer (and
// TAIssuerSet) takes the leaf's issuer (Issuers[0]), already served; TARoot takes the chain's last
// certificate when it is self-signed, else FindRoot(last, roots) (roots nil
// means the system store), which Served then appends. On error c.TA is left
// unchanged.
//
// Errors: ErrTANotFound (the chain has no issuer for TAIssuer; the root is
// not in the store for TARoot), errors of LoadRootStore, and an error for an
// unknown mode.
func (c *Chain) AppendTA(mode string, roots *RootStore) error {
	if c.Leaf == nil {
		return fmt.Errorf("trust anchor: %w", ErrNoCertificate)
	}
	switch mode {
	case TANone:
		c.TA = nil
	case TAIssuer, TAIssuerSet:
		if len(c.Issuers) == 0 {
			return fmt.Errorf("%w: the chain files of %q hold no issuer certificate (issuer %q); use a full chain (certbot fullchain.pem, lego without --no-bundle or with the issuer file)",
				ErrTANotFound, c.Leaf.Subject.String(), c.Leaf.Issuer.String())
		}
		c.TA = c.Issuers[0]
	case TARoot:
		last := c.Leaf
		if len(c.Issuers) > 0 {
			last = c.Issuers[len(c.Issuers)-1]
		}
		ta, err := FindRoot(last, roots)
		if err != nil {
			return err
		}
		c.TA = ta
	default:
		return fmt.Errorf("trust anchor mode %q: want %q, %q or %q", mode, TANone, TAIssuer, TARoot)
	}
	return nil
}
