// Package dehydrated holds what danehook knows of dehydrated's files and
// hook contract (dehydrated 0.7.0, the Debian 12 package; the script and
// docs/examples/hook.sh of github.com/dehydrated-io/dehydrated):
//
//   - A certificate lives in CERTDIR/<alias>/ (Debian: /var/lib/dehydrated/certs/<alias>),
//     where <alias> is the first name of its domains.txt line or its
//     ">alias". Each issuance writes privkey-<ts>.pem (only when a new key
//     is made), cert-<ts>.pem, chain-<ts>.pem, fullchain-<ts>.pem and
//     cert-<ts>.csr, then points the links privkey.pem, cert.pem,
//     chain.pem, fullchain.pem and cert.csr at them (sign_domain).
//   - The hook ($HOOK, --hook) is run as an executable, without a shell, as
//     "$HOOK" HANDLER ARGS...: startup_hook before the first certificate of
//     a --cron run, deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAINFILE
//     CHAINFILE TIMESTAMP after each issuance (KEYFILE etc. are the links
//     in CERTDIR/<alias>/), exit_hook [ERROR] at the end; among others
//     (deploy_challenge, clean_challenge, sync_cert, unchanged_cert,
//     deploy_ocsp, invalid_challenge, request_failure, generate_csr). A hook
//     must ignore handlers it does not know and exit 0: dehydrated calls a
//     made-up one (hookscript_bricker_hook) and aborts when it fails.
//   - PRIVATE_KEY_RENEW (default "yes") makes every issuance generate a new
//     key; "no" reuses privkey.pem. It is read from the main configuration
//     (sourced before startup_hook), CONFIG_D/*.sh, then the
//     per-certificate configuration CERTDIR/<alias>/config (or
//     DOMAINS_D/<alias> when DOMAINS_D is set), which is sourced for each
//     certificate after startup_hook (command_sign_domains). So
//     PRIVATE_KEY_RENEW="no" in the per-certificate configuration, written
//     by danehook's startup_hook, holds for the renewal that follows.
//
// It may import internal/atomicfile, nothing else of danehook.
package dehydrated

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
)

// File names in a certificate directory (links to the timestamped files).
const (
	KeyFile       = "privkey.pem"
	CertFile      = "cert.pem"
	ChainFile     = "chain.pem"
	FullchainFile = "fullchain.pem"
	// CertConfig is the per-certificate configuration file.
	CertConfig = "config"
)

// Hook handlers danehook acts on; every other handler is ignored.
const (
	HandlerStartup = "startup_hook"
	HandlerDeploy  = "deploy_cert"
	HandlerExit    = "exit_hook"
)

// KeyRenew is the setting that makes dehydrated generate a new key.
const KeyRenew = "PRIVATE_KEY_RENEW"

// DefaultConfigs are the main configuration files dehydrated looks for, in
// its order, when none is given (load_config; the script's own directory
// and the working directory come after these and are not searched here).
var DefaultConfigs = []string{"/etc/dehydrated/config", "/usr/local/etc/dehydrated/config"}

// Alias returns the certificate's alias: the base name of its directory.
func Alias(certDir string) string { return filepath.Base(filepath.Clean(certDir)) }

// MainConfig returns configured, or else the first of DefaultConfigs that
// exists, or "" when none does (dehydrated then runs on its defaults).
func MainConfig(configured string) string {
	if configured != "" {
		return configured
	}
	for _, p := range DefaultConfigs {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Settings is the outcome of dehydrated's configuration for one certificate.
type Settings struct {
	// MainConfig is the main configuration read ("" for none).
	MainConfig string
	// KeyRenew is the effective PRIVATE_KEY_RENEW ("yes" by default).
	KeyRenew string
	// MainKeyRenew is PRIVATE_KEY_RENEW after the main configuration and
	// CONFIG_D, before the per-certificate configuration.
	MainKeyRenew string
	// CertConfig is the per-certificate configuration file dehydrated reads
	// for this certificate (it may not exist).
	CertConfig string
}

// Pinned reports whether renewals keep the key (PRIVATE_KEY_RENEW is "no").
func (s *Settings) Pinned() bool { return s.KeyRenew == "no" }

// script sources the configuration as dehydrated does (load_config, then
// the per-certificate file of command_sign_domains) and prints the values
// danehook needs, one per line, on fd 3; whatever the files print is
// discarded.
const script = `set -f
main="$1"; certdir="$2"
PRIVATE_KEY_RENEW=yes; CONFIG_D=; DOMAINS_D=
if [ -n "$main" ]; then BASEDIR="$(dirname "$main")"; . "$main" >/dev/null 2>&1 || exit 11; fi
if [ -n "$CONFIG_D" ]; then
  set +f
  for f in "$CONFIG_D"/*.sh; do if [ -f "$f" ]; then . "$f" >/dev/null 2>&1 || exit 12; fi; done
  set -f
fi
alias="$(basename "$certdir")"
if [ -n "$DOMAINS_D" ]; then cc="$DOMAINS_D/$alias"; else cc="$certdir/config"; fi
mainrenew="$PRIVATE_KEY_RENEW"
if [ -f "$cc" ]; then . "$cc" >/dev/null 2>&1 || exit 13; fi
printf '%s\n%s\n%s\n' "$mainrenew" "$PRIVATE_KEY_RENEW" "$cc" >&3
`

// Read evaluates dehydrated's configuration for the certificate in
// certDir: mainConfig (see MainConfig; "" for none), CONFIG_D/*.sh and the
// per-certificate configuration, each sourced by bash as dehydrated does
// (they are shell fragments; danehook runs them with the same rights
// dehydrated has). Errors name the file that failed.
func Read(ctx context.Context, mainConfig, certDir string) (*Settings, error) {
	if mainConfig != "" {
		if _, err := os.Stat(mainConfig); err != nil {
			return nil, fmt.Errorf("dehydrated configuration: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, "bash", "-c", script, "dehydrated-config", mainConfig, filepath.Clean(certDir))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("dehydrated configuration: run bash: %w", err)
	}
	w.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 11:
			return nil, fmt.Errorf("dehydrated configuration %s: sourcing it failed (bash -c '. %s')", mainConfig, mainConfig)
		case 12:
			return nil, fmt.Errorf("dehydrated configuration %s: a CONFIG_D/*.sh file failed to source", mainConfig)
		case 13:
			return nil, fmt.Errorf("dehydrated per-certificate configuration of %s: sourcing it failed", certDir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dehydrated configuration %s: %w %s", mainConfig, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		return nil, fmt.Errorf("dehydrated configuration %s: unexpected output %q", mainConfig, out.String())
	}
	return &Settings{MainConfig: mainConfig, MainKeyRenew: lines[0], KeyRenew: lines[1], CertConfig: lines[2]}, nil
}

// keyRenewLine matches an assignment of PRIVATE_KEY_RENEW at the start of
// a line (with optional export and quotes).
var keyRenewLine = regexp.MustCompile(`^\s*(export\s+)?PRIVATE_KEY_RENEW=`)

// EnsureKeyKept makes dehydrated reuse the key of the certificate in
// certDir: when Read finds PRIVATE_KEY_RENEW other than "no", it sets
// PRIVATE_KEY_RENEW="no" in the per-certificate configuration (replacing
// every assignment there, keeping every other line, creating the file
// 0644 when missing, written atomically), which dehydrated reads last. It
// returns the settings read before the change and whether the file
// changed; an error names the file.
func EnsureKeyKept(ctx context.Context, mainConfig, certDir string) (*Settings, bool, error) {
	s, err := Read(ctx, mainConfig, certDir)
	if err != nil {
		return nil, false, err
	}
	if s.Pinned() {
		return s, false, nil
	}
	mode := os.FileMode(0o644)
	var kept []string
	data, err := os.ReadFile(s.CertConfig)
	switch {
	case err == nil:
		if fi, err := os.Stat(s.CertConfig); err == nil {
			mode = fi.Mode().Perm()
		}
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if l != "" && !keyRenewLine.MatchString(l) {
				kept = append(kept, l)
			}
		}
		if n := len(kept); n > 0 && !strings.HasSuffix(kept[n-1], "\n") {
			kept[n-1] += "\n"
		}
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(s.CertConfig), 0o700); err != nil {
			return s, false, fmt.Errorf("dehydrated per-certificate configuration %s: %w", s.CertConfig, err)
		}
	default:
		return s, false, fmt.Errorf("dehydrated per-certificate configuration: %w", err)
	}
	kept = append(kept, "# danehook: keep the key its TLSA 3 1 1 records pin (dane-prerenew)\n", KeyRenew+`="no"`+"\n")
	if err := atomicfile.Write(s.CertConfig, []byte(strings.Join(kept, "")), mode); err != nil {
		return s, false, fmt.Errorf("dehydrated per-certificate configuration: %w", err)
	}
	return s, true, nil
}
