// Package hookenv recognises which ACME client ran a danehook hook, from the
// environment variables each client sets, and returns the renewal it
// reports: the client, the lineage, its directory and the files it just
// wrote. It may import the client packages (certbot, lego) for their file
// names only, and nothing else of danehook.
//
// Sources: certbot's deploy hooks get RENEWED_LINEAGE and RENEWED_DOMAINS
// (certbot/_internal/hooks.py, _run_deploy_hook); lego v4's --run-hook and
// --renew-hook get LEGO_CERT_DOMAIN, LEGO_CERT_PATH, LEGO_CERT_KEY_PATH and,
// when the CA sent an issuer, LEGO_ISSUER_CERT_PATH (cmd/hook.go in v4,
// addPathToMetadata); lego v5's --deploy-hook gets the LEGO_HOOK_* variables
// (cmd/internal/hook/metadata.go; v5.0.0 to v5.0.3 leave
// LEGO_HOOK_CERT_NAME unset, fixed by go-acme/lego#3089 in v5.0.4);
// acme.sh's --reloadcmd and --renew-hook get CERT_PATH, CERT_KEY_PATH,
// CA_CERT_PATH, CERT_FULLCHAIN_PATH and Le_Domain (acme.sh _installcert and
// _on_issue_success; see pkg/acmesh). dehydrated passes no variables but
// arguments: deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAINFILE CHAINFILE
// TIMESTAMP (FromDehydrated; see pkg/dehydrated).
package hookenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/lego"
)

// Client names the ACME client that ran the hook.
type Client string

// The clients danehook recognises.
const (
	Certbot Client = "certbot"
	LegoV4  Client = "lego-v4"
	LegoV5  Client = "lego-v5"
	// AcmeSh is acme.sh (--reloadcmd, --renew-hook).
	AcmeSh Client = "acme.sh"
	// Dehydrated is dehydrated (its hook script's deploy_cert handler).
	Dehydrated Client = "dehydrated"
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

	AcmeShDomain    = acmesh.EnvDomain
	AcmeShCertPath  = acmesh.EnvCertPath
	AcmeShKeyPath   = acmesh.EnvKeyPath
	AcmeShCACert    = acmesh.EnvCACertPath
	AcmeShFullchain = acmesh.EnvFullchainPath
)

// Renewal describes one renewed certificate as the client reported it.
type Renewal struct {
	Client Client
	// Lineage is certbot's lineage name (the base name of RENEWED_LINEAGE),
	// lego v5's certificate name (LEGO_HOOK_CERT_NAME, or the certificate
	// file's name where lego leaves it unset), lego v4's or acme.sh's main
	// domain (Le_Domain), or dehydrated's alias (the base name of the
	// certificate directory).
	Lineage string
	// Dir is the lineage's directory: for certbot RENEWED_LINEAGE exactly as
	// certbot gave it (<config-dir>/live/<name>); for lego the directory of
	// the certificate file (<path>/certificates).
	Dir string
	// Domains are the certificate's names: RENEWED_DOMAINS,
	// LEGO_HOOK_CERT_DOMAINS, or lego v4's main domain only.
	Domains []string
	// KeyFile is the private key; CertFile the leaf (certbot's cert.pem) or
	// lego's bundle (<name>.crt: leaf and issuers); IssuerFiles the issuer
	// certificates (certbot's chain.pem, lego's <name>.issuer.crt), empty
	// for lego when the CA sent none.
	KeyFile     string
	CertFile    string
	IssuerFiles []string
}

// Deploy is the former name of Renewal, kept only until pkg/deploy uses
// Renewal (it collides with package deploy); new code uses Renewal. It is not
// marked "Deprecated:" so that staticcheck (SA1019) passes meanwhile.
type Deploy = Renewal

// ErrNoClient is returned (wrapped) when none of the known variable sets is
// present, e.g. when the binary was installed as a pre or post hook.
var ErrNoClient = errors.New("no ACME client hook variables found")

// FromEnv reads the deploy-hook environment through getenv (os.Getenv in
// production). lego v5's variables win over lego v4's, which win over
// certbot's, which win over acme.sh's (recognised by Le_Domain, as its
// other names are generic). It checks that every file a variable names
// exists, and returns an error naming the variable and the file when one
// does not, or wrapping ErrNoClient (listing the variable sets it knows)
// when none is present.
func FromEnv(getenv func(string) string) (*Renewal, error) {
	switch {
	case getenv(LegoV5CertPath) != "" || getenv(LegoV5Name) != "":
		return fromLegoV5(getenv)
	case getenv(LegoV4CertPath) != "" || getenv(LegoV4Domain) != "":
		return fromLegoV4(getenv)
	case getenv(CertbotLineage) != "":
		return fromCertbot(getenv)
	case getenv(AcmeShDomain) != "":
		return fromAcmeSh(getenv)
	}
	return nil, fmt.Errorf("%w: dane-deploy expects certbot's %s, lego v4's %s/%s, lego v5's %s/%s, acme.sh's %s/%s, or dehydrated's arguments (deploy_cert DOMAIN KEYFILE …); install it as a deploy hook (certbot --deploy-hook, lego v4 --run-hook/--renew-hook, lego v5 --deploy-hook, acme.sh --reloadcmd or --renew-hook, dehydrated HOOK), not as a pre or post hook",
		ErrNoClient, CertbotLineage, LegoV4CertPath, LegoV4KeyPath, LegoV5CertPath, LegoV5KeyPath, AcmeShDomain, AcmeShKeyPath)
}

// fromLegoV5 reads lego v5's LEGO_HOOK_* variables.
func fromLegoV5(getenv func(string) string) (*Renewal, error) {
	r := &Renewal{Client: LegoV5, Lineage: getenv(LegoV5Name), Domains: split(getenv(LegoV5Domains), ",")}
	if err := legoFiles(getenv, r, LegoV5KeyPath, LegoV5CertPath, LegoV5IssuerPath); err != nil {
		return nil, err
	}
	if r.Lineage == "" {
		// lego v5.0.0–v5.0.3 set no LEGO_HOOK_CERT_NAME; the certificate
		// file is certificates/<name>.crt.
		r.Lineage = lego.CertName(r.CertFile)
	}
	if r.Lineage == "" {
		return nil, fmt.Errorf("lego v5 hook: %s is empty and %s=%q is not a <name>%s file", LegoV5Name, LegoV5CertPath, r.CertFile, lego.ExtCert)
	}
	return r, nil
}

// fromLegoV4 reads lego v4's LEGO_CERT_* variables.
func fromLegoV4(getenv func(string) string) (*Renewal, error) {
	r := &Renewal{Client: LegoV4, Lineage: getenv(LegoV4Domain)}
	if r.Lineage == "" {
		return nil, fmt.Errorf("lego v4 hook: %s is empty", LegoV4Domain)
	}
	r.Domains = []string{r.Lineage}
	if err := legoFiles(getenv, r, LegoV4KeyPath, LegoV4CertPath, LegoV4IssuerPath); err != nil {
		return nil, err
	}
	return r, nil
}

// fromCertbot reads certbot's RENEWED_LINEAGE and RENEWED_DOMAINS.
func fromCertbot(getenv func(string) string) (*Renewal, error) {
	dir := getenv(CertbotLineage)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("certbot hook: %s=%q is not a directory", CertbotLineage, dir)
	}
	r := &Renewal{
		Client:      Certbot,
		Lineage:     certbot.LineageName(dir),
		Dir:         dir,
		Domains:     split(getenv(CertbotDomains), " "),
		KeyFile:     filepath.Join(dir, certbot.LiveKey),
		CertFile:    filepath.Join(dir, certbot.LiveCert),
		IssuerFiles: []string{filepath.Join(dir, certbot.LiveChain)},
	}
	for _, f := range append([]string{r.KeyFile, r.CertFile}, r.IssuerFiles...) {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("certbot hook: %s=%q: %s is missing: is this a certbot live directory?", CertbotLineage, dir, filepath.Base(f))
		}
	}
	return r, nil
}

// fromAcmeSh reads acme.sh's --reloadcmd/--renew-hook variables.
func fromAcmeSh(getenv func(string) string) (*Renewal, error) {
	r := &Renewal{Client: AcmeSh, Lineage: getenv(AcmeShDomain)}
	r.Domains = []string{r.Lineage}
	if err := legoFiles(getenv, r, AcmeShKeyPath, AcmeShCertPath, AcmeShCACert); err != nil {
		return nil, err
	}
	return r, nil
}

// FromDehydrated reads the arguments dehydrated gives its hook, without the
// program name: HANDLER and its arguments. For deploy_cert DOMAIN KEYFILE
// CERTFILE FULLCHAINFILE CHAINFILE TIMESTAMP it returns the renewal (its
// lineage is the alias, the base name of KEYFILE's directory) after checking
// that the files exist. For any other handler it returns (nil, nil): a
// dehydrated hook ignores the handlers it does not act on. Errors name the
// argument at fault.
func FromDehydrated(args []string) (*Renewal, error) {
	if len(args) == 0 || args[0] != dehydrated.HandlerDeploy {
		return nil, nil
	}
	const want = "deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAINFILE CHAINFILE TIMESTAMP"
	if len(args) < 6 {
		return nil, fmt.Errorf("dehydrated hook: %d argument(s) after deploy_cert; want %s", len(args)-1, want)
	}
	r := &Renewal{Client: Dehydrated, Domains: []string{args[1]}, KeyFile: args[2], CertFile: args[3], IssuerFiles: []string{args[5]}}
	for i, name := range []string{"KEYFILE", "CERTFILE", "FULLCHAINFILE", "CHAINFILE"} {
		if _, err := os.Stat(args[2+i]); err != nil {
			return nil, fmt.Errorf("dehydrated hook: deploy_cert %s %q: file does not exist (arguments: %s)", name, args[2+i], want)
		}
	}
	r.Dir = filepath.Dir(r.KeyFile)
	r.Lineage = dehydrated.Alias(r.Dir)
	return r, nil
}

// legoFiles fills the key, certificate, optional issuer paths and the
// directory of r from the named variables, checking that each named file
// exists.
func legoFiles(getenv func(string) string, r *Renewal, keyVar, certVar, issuerVar string) error {
	for _, v := range []string{keyVar, certVar} {
		p := getenv(v)
		if p == "" {
			return fmt.Errorf("%s hook: %s is empty", r.Client, v)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s hook: %s=%q: file does not exist", r.Client, v, p)
		}
	}
	r.KeyFile, r.CertFile = getenv(keyVar), getenv(certVar)
	r.Dir = filepath.Dir(r.CertFile)
	if p := getenv(issuerVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s hook: %s=%q: file does not exist", r.Client, issuerVar, p)
		}
		r.IssuerFiles = []string{p}
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
