// Package hookenv recognises which ACME client ran a danehook hook, from the
// environment variables each client sets, and returns the lineage and the
// files it just wrote.
//
// Sources: certbot's deploy hooks get RENEWED_LINEAGE and RENEWED_DOMAINS
// (certbot/_internal/hooks.py, _run_deploy_hook); lego v4's --run-hook and
// --renew-hook get LEGO_CERT_DOMAIN, LEGO_CERT_PATH, LEGO_CERT_KEY_PATH and
// LEGO_ISSUER_CERT_PATH (cmd/hook.go in v4); lego v5's --deploy-hook gets the
// LEGO_HOOK_* variables (cmd/internal/hook/metadata.go in v5.6.0).
package hookenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Client names the ACME client that ran the hook.
type Client string

// The clients danehook recognises.
const (
	Certbot Client = "certbot"
	LegoV4  Client = "lego-v4"
	LegoV5  Client = "lego-v5"
)

// Environment variables read, by client.
const (
	CertbotLineage = "RENEWED_LINEAGE"
	CertbotDomains = "RENEWED_DOMAINS"

	LegoV4Domain     = "LEGO_CERT_DOMAIN"
	LegoV4CertPath   = "LEGO_CERT_PATH"
	LegoV4KeyPath    = "LEGO_CERT_KEY_PATH"
	LegoV4IssuerPath = "LEGO_ISSUER_CERT_PATH"

	LegoV5Name       = "LEGO_HOOK_CERT_NAME"
	LegoV5Domains    = "LEGO_HOOK_CERT_DOMAINS"
	LegoV5CertPath   = "LEGO_HOOK_CERT_PATH"
	LegoV5KeyPath    = "LEGO_HOOK_CERT_KEY_PATH"
	LegoV5IssuerPath = "LEGO_HOOK_ISSUER_CERT_PATH"
)

// Deploy describes one renewed certificate as the client reported it.
type Deploy struct {
	Client Client
	// Lineage is certbot's lineage name (the base name of RENEWED_LINEAGE),
	// lego v5's certificate name, or lego v4's main domain.
	Lineage string
	// Domains are the certificate's names.
	Domains []string
	// KeyFile is the private key; CertFile the leaf (certbot's cert.pem) or
	// lego's bundle; IssuerFiles the issuer certificates (certbot's chain.pem,
	// lego's .issuer.crt), possibly empty for lego.
	KeyFile     string
	CertFile    string
	IssuerFiles []string
}

// ErrNoClient is returned (wrapped) when none of the known variable sets is
// present, e.g. when the binary was installed as a pre or post hook.
var ErrNoClient = errors.New("no ACME client hook variables found")

// FromEnv reads the deploy-hook environment through getenv (os.Getenv in
// production). It checks that every file a variable names exists, and returns
// an error naming the variable and the file when one does not, or wrapping
// ErrNoClient (listing the variable sets it knows) when none is present.
func FromEnv(getenv func(string) string) (*Deploy, error) {
	switch {
	case getenv(LegoV5CertPath) != "" || getenv(LegoV5Name) != "":
		d := &Deploy{Client: LegoV5, Lineage: getenv(LegoV5Name), Domains: split(getenv(LegoV5Domains), ",")}
		if err := files(getenv, d, LegoV5KeyPath, LegoV5CertPath, LegoV5IssuerPath); err != nil {
			return nil, err
		}
		if d.Lineage == "" {
			return nil, fmt.Errorf("lego v5 hook: %s is empty", LegoV5Name)
		}
		return d, nil
	case getenv(LegoV4CertPath) != "" || getenv(LegoV4Domain) != "":
		d := &Deploy{Client: LegoV4, Lineage: getenv(LegoV4Domain)}
		d.Domains = []string{d.Lineage}
		if err := files(getenv, d, LegoV4KeyPath, LegoV4CertPath, LegoV4IssuerPath); err != nil {
			return nil, err
		}
		if d.Lineage == "" {
			return nil, fmt.Errorf("lego v4 hook: %s is empty", LegoV4Domain)
		}
		return d, nil
	case getenv(CertbotLineage) != "":
		dir := getenv(CertbotLineage)
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("certbot hook: %s=%q is not a directory", CertbotLineage, dir)
		}
		d := &Deploy{
			Client:      Certbot,
			Lineage:     filepath.Base(filepath.Clean(dir)),
			Domains:     split(getenv(CertbotDomains), " "),
			KeyFile:     filepath.Join(dir, "privkey.pem"),
			CertFile:    filepath.Join(dir, "cert.pem"),
			IssuerFiles: []string{filepath.Join(dir, "chain.pem")},
		}
		for _, f := range append([]string{d.KeyFile, d.CertFile}, d.IssuerFiles...) {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("certbot hook: %s=%q: %s is missing: is this a certbot live directory?", CertbotLineage, dir, filepath.Base(f))
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: dane-deploy expects certbot's %s, lego v4's %s/%s, or lego v5's %s/%s; install it as a deploy hook (certbot --deploy-hook, lego v4 --run-hook/--renew-hook, lego v5 --deploy-hook), not as a pre or post hook",
		ErrNoClient, CertbotLineage, LegoV4CertPath, LegoV4KeyPath, LegoV5CertPath, LegoV5KeyPath)
}

// files fills the key, certificate and optional issuer paths of d from the
// named variables, checking that each named file exists.
func files(getenv func(string) string, d *Deploy, keyVar, certVar, issuerVar string) error {
	for _, v := range []string{keyVar, certVar} {
		p := getenv(v)
		if p == "" {
			return fmt.Errorf("%s hook: %s is empty", d.Client, v)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s hook: %s=%q: file does not exist", d.Client, v, p)
		}
	}
	d.KeyFile, d.CertFile = getenv(keyVar), getenv(certVar)
	if p := getenv(issuerVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s hook: %s=%q: file does not exist", d.Client, issuerVar, p)
		}
		d.IssuerFiles = []string{p}
	}
	return nil
}

func split(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
