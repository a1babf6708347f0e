package lego

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/tlsa"
)

// CheckCSR reports whether the pinned CSR at csrFile (lego --csr) asks for
// the key in keyFile and at least the names in domains (in any order, case
// and a trailing dot ignored): a renewal from it then certifies the current
// key for every TLSA host. A missing or unreadable CSR, or one that is not
// exactly one CERTIFICATE REQUEST, is reported as false with no error; an
// unreadable key file is an error naming it.
func CheckCSR(keyFile, csrFile string, domains []string) (bool, error) {
	key, err := chain.ReadKey(keyFile)
	if err != nil {
		return false, err
	}
	return csrMatches(csrFile, key, domains), nil
}

// EnsureCSR keeps the pinned CSR at csrFile made from the key in keyFile
// for domains (the first is the subject's common name): when CheckCSR would
// say false, it makes a new CSR, signed with the key, for domains and any
// further names the previous CSR asked for (so a renewal never drops a
// name the operator added), and writes it atomically (mode 0644: a CSR
// holds no secret). It returns whether the file changed. Errors name the
// file at fault; domains must not be empty.
func EnsureCSR(keyFile, csrFile string, domains []string) (changed bool, err error) {
	if len(domains) == 0 {
		return false, errors.New("lego: pinned CSR: no domain names")
	}
	key, err := chain.ReadKey(keyFile)
	if err != nil {
		return false, err
	}
	if csrMatches(csrFile, key, domains) {
		return false, nil
	}
	names := slices.Clone(domains)
	if b, err := chain.ReadFile(csrFile); err == nil && len(b.CSRs) == 1 {
		for _, n := range b.CSRs[0].DNSNames {
			if !containsName(names, n) {
				names = append(names, n)
			}
		}
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: domains[0]}, DNSNames: names}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return false, fmt.Errorf("lego: make CSR from %q: %w", keyFile, err)
	}
	if err := atomicfile.Write(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// csrMatches reports whether csrFile holds one CSR for key and domains.
func csrMatches(csrFile string, key crypto.Signer, domains []string) bool {
	b, err := chain.ReadFile(csrFile)
	if err != nil || len(b.CSRs) != 1 || len(b.PrivateKeys) != 0 {
		return false
	}
	csr := b.CSRs[0]
	want, err := tlsa.KeyDigest(key)
	if err != nil {
		return false
	}
	have, err := tlsa.KeyDigest(csr.PublicKey)
	return err == nil && have == want && coversNames(csr.DNSNames, domains)
}

// coversNames reports whether have holds every name of want.
func coversNames(have, want []string) bool {
	for _, n := range want {
		if !containsName(have, n) {
			return false
		}
	}
	return true
}

// containsName reports whether names holds n, ignoring case and a
// trailing dot.
func containsName(names []string, n string) bool {
	norm := func(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }
	for _, x := range names {
		if norm(x) == norm(n) {
			return true
		}
	}
	return false
}
