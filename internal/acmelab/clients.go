package acmelab

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CertbotArgs returns the certbot 2.x flags that point it at this Pebble,
// with all of its state under configDir: --config-dir configDir (so the
// lineage lands in configDir/live/<cert-name>/{cert,chain,fullchain,privkey}.pem,
// symlinks into configDir/archive/<cert-name>/), --work-dir configDir/work and
// --logs-dir configDir/logs. It adds `-n --agree-tos -m admin@example.test
// --no-eff-email`, the standalone authenticator on 127.0.0.1:HTTPPort
// (`--standalone --http-01-port PORT --http-01-address 127.0.0.1`) and
// `--no-random-sleep-on-renew`.
//
// Put the subcommand first and add the lineage's flags after, with
// append(os.Environ(), lab.Env()...) as the environment (REQUESTS_CA_BUNDLE):
//
//	certbot certonly <CertbotArgs> --cert-name mail -d mail.example.test --deploy-hook …
//	certbot renew <CertbotArgs> --force-renewal
//
// Certbot facts (2.1.0, Debian 12): without --no-random-sleep-on-renew,
// `certbot renew` without a terminal sleeps a random 0-8 minutes; the flag is
// not in --help but every subcommand accepts it. The --http-01-port given to
// renew overrides the one stored in renewal/<name>.conf, which matters because
// every Lab has its own port. A --deploy-hook given to certonly is stored as
// renew_hook and runs again on renew; hooks run with `sh -c` and get
// RENEWED_LINEAGE (configDir/live/<name>) and RENEWED_DOMAINS
// (space-separated). `--reuse-key` is stored as reuse_key = True; `--new-key`
// forces one new key and keeps it.
func (l *Lab) CertbotArgs(configDir string) []string {
	return []string{
		"--config-dir", configDir,
		"--work-dir", filepath.Join(configDir, "work"),
		"--logs-dir", filepath.Join(configDir, "logs"),
		"--server", l.DirectoryURL,
		"-n", "--agree-tos", "-m", Email, "--no-eff-email",
		"--standalone",
		"--http-01-port", strconv.Itoa(l.HTTPPort),
		"--http-01-address", "127.0.0.1",
		"--no-random-sleep-on-renew",
	}
}

// LegoV5Args returns the lego v5 (v5.6.0) command line up to and including
// the HTTP-01 solver, storing everything under path:
//
//	run --server <DirectoryURL> --accept-tos --email admin@example.test --path <path>
//	    --http --http.address 127.0.0.1:<HTTPPort> --no-random-sleep --log.format text
//
// Append the certificate's flags (`--domains mail.example.test --key-type
// EC256 --reuse-key --deploy-hook …`) and run it with
// append(os.Environ(), lab.Env()...) (LEGO_CA_CERTIFICATES). Files land in
// path/certificates/<cert name>.{crt,key,issuer.crt,json}; the cert name is
// --cert.name or the first domain. .crt is leaf + issuer unless --no-bundle;
// .key is PKCS#8.
//
// lego v5 facts: `run` both obtains and renews (no renew subcommand).
// Renewal is due by ARI (RFC 9773) or after 2/3 of the lifetime;
// --renew-force and --renew-days N override. Without --no-random-sleep a
// renewal without a terminal sleeps a random 0-8 minutes. Hooks are
// --pre-hook, --deploy-hook and --post-hook (each with a *-timeout, default
// 2m), split with strings.Fields and run without a shell; they get
// LEGO_HOOK_CERT_NAME, LEGO_HOOK_CERT_NAME_SANITIZED, LEGO_HOOK_CERT_DOMAINS
// (comma-separated), LEGO_HOOK_CERT_KEY_TYPE, and, for deploy (and post after
// a deploy), LEGO_HOOK_CERT_PATH, LEGO_HOOK_CERT_KEY_PATH,
// LEGO_HOOK_ISSUER_CERT_PATH, plus LEGO_HOOK_ACCOUNT_{ID,EMAIL,SERVER}.
// The pre-hook runs only when a certificate will be obtained, and after lego
// has read the --csr file or, with --reuse-key, the stored key: a pre-hook
// that replaces either affects the next renewal, not this one.
func (l *Lab) LegoV5Args(path string) []string {
	return []string{
		"run",
		"--server", l.DirectoryURL,
		"--accept-tos",
		"--email", Email,
		"--path", path,
		"--http", "--http.address", hostPort(l.HTTPPort),
		"--no-random-sleep",
		"--log.format", "text",
	}
}

// LegoV4Args returns a lego v4 (v4.35.2) command line storing everything
// under path: the global flags
//
//	--server <DirectoryURL> --accept-tos --email admin@example.test --path <path>
//	--http --http.port 127.0.0.1:<HTTPPort> <global...>
//
// then cmd ("run" or "renew"), and for "renew" also --no-random-sleep. In v4
// --domains, --key-type, --csr and --pem are global flags and must come
// before the subcommand: pass them as global, e.g.
// LegoV4Args(p, "renew", "--domains", "mail.example.test"). Append the
// subcommand's own flags (run: --run-hook; renew: --renew-hook, --days,
// --reuse-key, --ari-disable) and run it with
// append(os.Environ(), lab.Env()...) (LEGO_CA_CERTIFICATES).
//
// lego v4 facts: files land in path/certificates/<first domain>.{crt,key,
// issuer.crt,json} (.key is SEC 1 "EC PRIVATE KEY" for EC keys). renew has
// no force flag: --days N renews when at most N days are left (--days 999
// forces), after asking the ARI endpoint unless --ari-disable. Without
// --no-random-sleep renew sleeps a random 0-8 minutes without a terminal.
// The only hooks are run --run-hook and renew --renew-hook (timeout flags
// --run-hook-timeout/--renew-hook-timeout, default 2m), run without a shell
// after the files are saved, with LEGO_ACCOUNT_EMAIL, LEGO_CERT_DOMAIN,
// LEGO_CERT_PATH, LEGO_CERT_KEY_PATH, LEGO_ISSUER_CERT_PATH (when an issuer
// was returned), LEGO_CERT_PEM_PATH (--pem) and LEGO_CERT_PFX_PATH (--pfx).
// There is no pre- or post-hook.
func (l *Lab) LegoV4Args(path, cmd string, global ...string) []string {
	args := []string{
		"--server", l.DirectoryURL,
		"--accept-tos",
		"--email", Email,
		"--path", path,
		"--http", "--http.port", hostPort(l.HTTPPort),
	}
	args = append(args, global...)
	args = append(args, cmd)
	if cmd == "renew" {
		args = append(args, "--no-random-sleep")
	}
	return args
}

// DehydratedConfig writes a dehydrated (0.7.0, Debian 12) main configuration
// at baseDir/config that points it at this Pebble and keeps all of its files
// under baseDir, and returns the file's path. Run dehydrated as
//
//	dehydrated --config <file> --cron --accept-terms --domain mail.example.test [--force]
//
// with append(os.Environ(), lab.Env()...) (NO_PROXY) as the environment.
// The configuration sets CA (the directory URL), BASEDIR, CERTDIR
// (baseDir/certs: a certificate lands in certs/<domain>/), WELLKNOWN
// (baseDir/wellknown, served by ServeWellKnown), CHALLENGETYPE http-01,
// KEY_ALGO prime256v1, KEYSIZE 2048 (the RSA account key), CONTACT_EMAIL, HOOK = hook (none when ""), and
// CURL_OPTS="--cacert CACertFile" so dehydrated's curl trusts Pebble's HTTPS
// certificate. PRIVATE_KEY_RENEW is left at dehydrated's default, "yes" (a
// new key at every issuance), which is what a hook that pins keys must fix.
//
// dehydrated facts: it runs HOOK as an executable without a shell, for every
// handler (see pkg/dehydrated), and aborts when the hook fails a made-up
// handler; without --accept-terms the first run only prints the CA's terms.
// dehydrated itself serves nothing for HTTP-01: it writes the token into
// WELLKNOWN and expects a web server to publish it.
func (l *Lab) DehydratedConfig(t testing.TB, baseDir, hook string) string {
	t.Helper()
	for _, d := range []string{baseDir, filepath.Join(baseDir, "certs"), filepath.Join(baseDir, "wellknown")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("acmelab: %v", err)
		}
	}
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s=%q\n", k, v) }
	set("CA", l.DirectoryURL)
	set("BASEDIR", baseDir)
	set("CERTDIR", filepath.Join(baseDir, "certs"))
	set("WELLKNOWN", filepath.Join(baseDir, "wellknown"))
	set("CHALLENGETYPE", "http-01")
	set("KEY_ALGO", "prime256v1")
	// The account key is RSA of KEYSIZE bits (default 4096, which takes
	// seconds to make on a loaded 2-core machine).
	set("KEYSIZE", "2048")
	set("CONTACT_EMAIL", Email)
	set("CURL_OPTS", "--cacert "+l.CACertFile)
	if hook != "" {
		set("HOOK", hook)
	}
	p := filepath.Join(baseDir, "config")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("acmelab: %v", err)
	}
	return p
}

// ServeWellKnown serves the files of dir at
// http://127.0.0.1:<HTTPPort>/.well-known/acme-challenge/ (RFC 8555 §8.3),
// where Pebble fetches HTTP-01 tokens, until the test ends: the web server
// an ACME client without its own (dehydrated) relies on.
func (l *Lab) ServeWellKnown(t testing.TB, dir string) {
	t.Helper()
	ln, err := net.Listen("tcp4", hostPort(l.HTTPPort))
	if err != nil {
		t.Fatalf("acmelab: HTTP-01 server: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/acme-challenge/", http.StripPrefix("/.well-known/acme-challenge/", http.FileServer(http.Dir(dir))))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}
