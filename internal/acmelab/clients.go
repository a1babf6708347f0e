package acmelab

import (
	"path/filepath"
	"strconv"
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
