// Package acmesh holds what danehook knows of acme.sh's files and hook
// environment. acme.sh is not packaged in Debian, so danehook is tested
// against its contract as its source states it, not against a running
// acme.sh (github.com/acmesh-official/acme.sh, acme.sh v3.1.4, commit
// d60c75b4e30a26addd8b9d0bfdeeed39c84ed51e):
//
//   - A certificate lives in its domain directory DOMAIN_PATH,
//     <home>/<domain> (RSA) or <home>/<domain>_ecc (ECDSA): <domain>.key
//     (CERT_KEY_PATH), <domain>.cer (CERT_PATH, the leaf), ca.cer
//     (CA_CERT_PATH, the issuers), fullchain.cer (CERT_FULLCHAIN_PATH) and
//     the domain configuration <domain>.conf (_initpath).
//   - --reloadcmd (stored as Le_ReloadCmd) runs after every issuance and
//     renewal that installs the certificate (_installcert), --renew-hook
//     (Le_RenewHook) after every renewal (_on_issue_success); both are run
//     with `eval` in a subshell whose working directory is DOMAIN_PATH, with
//     CERT_PATH, CERT_KEY_PATH, CA_CERT_PATH, CERT_FULLCHAIN_PATH and
//     Le_Domain (the main domain) exported; the reload command also gets
//     Le_ForceNewDomainKey and Le_Next_Domain_Key. --pre-hook gets only
//     Le_Domain and Le_Alt (_on_before_issue).
//   - --always-force-new-domain-key is stored as Le_ForceNewDomainKey='1'
//     in the domain configuration (_setopt writes KEY='value' lines);
//     with it every renewal makes a new key (issue: `[ "$Le_ForceNewDomainKey"
//     = "1" ]` → createDomainKey, or the pre-generated <domain>.key.next).
//     renew() sources the domain configuration before the pre hook runs,
//     and issue writes Le_ForceNewDomainKey back (or clears it) after the
//     certificate is saved and before the reload command and renew hook run,
//     so a repair made by the reload command or renew hook holds for the
//     next renewal, one made by the pre hook too late for the current one.
//
// It may import internal/atomicfile, nothing else of danehook.
package acmesh

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/danehook/danehook/internal/atomicfile"
)

// Environment variables of --reloadcmd and --renew-hook.
const (
	EnvCertPath      = "CERT_PATH"
	EnvKeyPath       = "CERT_KEY_PATH"
	EnvCACertPath    = "CA_CERT_PATH"
	EnvFullchainPath = "CERT_FULLCHAIN_PATH"
	EnvDomain        = "Le_Domain"
)

// ForceNewKey is the domain configuration setting of
// --always-force-new-domain-key.
const ForceNewKey = "Le_ForceNewDomainKey"

// eccSuffix marks the domain directory of an ECDSA certificate.
const eccSuffix = "_ecc"

// Layout names the files of one acme.sh domain directory.
type Layout struct {
	Dir       string // DOMAIN_PATH
	Domain    string // the main domain (Le_Domain)
	Key       string // <domain>.key
	Cert      string // <domain>.cer
	CACert    string // ca.cer
	Fullchain string // fullchain.cer
	Conf      string // <domain>.conf
}

// LayoutOf returns the layout of the domain directory dir
// (<home>/<domain> or <home>/<domain>_ecc).
func LayoutOf(dir string) Layout {
	dir = filepath.Clean(dir)
	d := strings.TrimSuffix(filepath.Base(dir), eccSuffix)
	return Layout{
		Dir: dir, Domain: d,
		Key:       filepath.Join(dir, d+".key"),
		Cert:      filepath.Join(dir, d+".cer"),
		CACert:    filepath.Join(dir, "ca.cer"),
		Fullchain: filepath.Join(dir, "fullchain.cer"),
		Conf:      filepath.Join(dir, d+".conf"),
	}
}

// forceLine matches the setting as acme.sh reads it (_read_conf greps
// "^Le_ForceNewDomainKey *=").
var forceLine = regexp.MustCompile(`^` + ForceNewKey + ` *=(.*)$`)

// ForcesNewKey reports whether the domain configuration at conf makes
// every renewal generate a new key (Le_ForceNewDomainKey='1'). Errors name
// the file.
func ForcesNewKey(conf string) (bool, error) {
	data, err := os.ReadFile(conf)
	if err != nil {
		return false, fmt.Errorf("acme.sh domain configuration: %w", err)
	}
	force := false // the last assignment wins: renew() sources the file
	for _, l := range strings.Split(string(data), "\n") {
		if m := forceLine.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			force = strings.Trim(strings.TrimSpace(m[1]), `'"`) == "1"
		}
	}
	return force, nil
}

// EnsureKeyKept removes Le_ForceNewDomainKey from the domain configuration
// at conf, as acme.sh's own _cleardomainconf does, keeping every other line
// and the file's mode (written atomically). It returns whether the file
// changed. A missing file is an error naming it.
func EnsureKeyKept(conf string) (bool, error) {
	fi, err := os.Stat(conf)
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("acme.sh domain configuration %s does not exist", conf)
	}
	if err != nil {
		return false, fmt.Errorf("acme.sh domain configuration: %w", err)
	}
	force, err := ForcesNewKey(conf)
	if err != nil || !force {
		return false, err
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		return false, fmt.Errorf("acme.sh domain configuration: %w", err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !forceLine.MatchString(strings.TrimRight(l, "\r\n")) {
			kept = append(kept, l)
		}
	}
	if err := atomicfile.Write(conf, []byte(strings.Join(kept, "")), fi.Mode().Perm()); err != nil {
		return false, fmt.Errorf("acme.sh domain configuration: %w", err)
	}
	return true, nil
}
