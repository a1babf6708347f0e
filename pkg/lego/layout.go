package lego

import (
	"path/filepath"
	"strings"
)

// CertificatesDir is the directory under lego's --path that holds the
// certificates (cmd/internal/storage in v5, cmd/certs_storage.go in v4).
const CertificatesDir = "certificates"

// File name extensions lego gives a certificate's files, after the
// sanitized certificate name.
const (
	ExtCert   = ".crt"        // the leaf, then the issuers (lego's "bundle")
	ExtKey    = ".key"        // the private key, PEM
	ExtIssuer = ".issuer.crt" // the issuers
	ExtPEM    = ".pem"        // key and certificates together (--pem)
)

// Files are the paths of one certificate's files in lego's storage.
type Files struct {
	Cert   string // <path>/certificates/<name>.crt
	Key    string // <path>/certificates/<name>.key
	Issuer string // <path>/certificates/<name>.issuer.crt
}

// FilesOf returns the files lego writes for the certificate called name
// (lego v5's --cert.name, lego v4's first --domains) under its --path.
func FilesOf(path, name string) Files {
	base := filepath.Join(path, CertificatesDir, SanitizedName(name))
	return Files{Cert: base + ExtCert, Key: base + ExtKey, Issuer: base + ExtIssuer}
}

// SanitizedName is the file name lego derives from a certificate name:
// ":" becomes "-" and "*" becomes "_" (a wildcard "*.example.com" is stored
// as "_.example.com"). Internationalised names must be given in their ASCII
// (A-label) form, as lego stores them.
func SanitizedName(name string) string {
	return strings.NewReplacer(":", "-", "*", "_").Replace(name)
}

// CertName returns the (sanitized) certificate name of a lego certificate
// file, "<name>.crt", or "" when certFile is no such file (an .issuer.crt
// included).
func CertName(certFile string) string {
	base := filepath.Base(certFile)
	if !strings.HasSuffix(base, ExtCert) || strings.HasSuffix(base, ExtIssuer) {
		return ""
	}
	return strings.TrimSuffix(base, ExtCert)
}
