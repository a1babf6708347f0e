package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/danehook/danehook/pkg/postfix"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/libdnsprov"
	"github.com/urfave/cli/v2"
)

// configCommand is "danectl config".
func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with the configuration file",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "validate the configuration and every file it names, changing nothing",
			Description: `check reads the configuration (syntax, settings, references between tables)
and reports every problem of the file in one run, each as file:line: host
names that are IP addresses, single labels, wildcards, with spaces or empty
labels, labels over 63 or names over 253 octets; servers without a port or
with one outside 1-65535; duplicated ports; negative timeouts; ta without a
2 1 1 usage; certbot_lineage together with lego_cert; a value shaped like a
secret where a variable or file name belongs (never printed); a chain_file
that is a directory; a chain directory, configuration file or its directory
that others may write. Then it checks every file the configuration names:

  - TSIG key files, secret files and Cloudflare token files: they must exist,
    be regular files readable by their owner only (chmod 600) and parse;
    secrets never appear in the output;
  - secret_env / api_token_env: a warning when unset in this environment
    (the hooks and the timer need them in theirs);
  - chain_file: its directory must exist (the file itself is written by
    dane-deploy); a chain file readable by group or others is a warning;
  - certbot_lineage, lego_cert, lego_key, lego_csr: a warning when absent (not
    issued yet), and when certbot's renewal configuration lacks reuse_key = True;
  - issuer_set (ta = "issuer-set") must hold CA intermediates; a warning when
    the chain file's or the ACME client's issuer is not a member, or a member
    expires within 30 days (the set is stale);
  - ca_file must exist; endpoints must be host:port; postfix config_dir must
    exist; the postfix command should be installed.

Each finding names the setting and the file. Nothing is contacted on the
network: 'danectl plan' and 'danectl check' talk to DNS and Postfix.

Every smtpd service of Postfix that offers TLS must read the chain files:
one that reads another file that exists (certbot's live/ files, Debian's
ssl-cert-snakeoil) is an error, with the postconf line that fixes it (the
hooks, tick, status and check refuse in that state); one that names no
certificate, or files that do not exist yet (before the first issuance),
a warning with the same line.

Exit codes: 0 valid (warnings allowed), 2 errors found, 8 the only errors
are Postfix reading files other than the chain files.`,
			Flags:  []cli.Flag{cliapp.ConfigFlag},
			Action: configCheck,
		}},
	}
}

// checker collects the findings of 'danectl config check'.
type checker struct {
	w                io.Writer
	errors, warnings int
	// postfixErrors counts the errors that are Postfix reading files
	// danehook does not protect (exit 8 when they are the only ones).
	postfixErrors int
	// skip reports whether a setting (or a table) already has a problem
	// reported from the configuration file.
	skip func(setting string) bool
}

func (k *checker) ok(setting, value, format string, a ...any) {
	fmt.Fprintf(k.w, "ok:      %s%s\n", subject(setting, value), fmt.Sprintf(format, a...))
}

func (k *checker) warn(setting, value, format string, a ...any) {
	k.warnings++
	fmt.Fprintf(k.w, "warning: %s%s\n", subject(setting, value), fmt.Sprintf(format, a...))
}

func (k *checker) fail(setting, value, format string, a ...any) {
	k.errors++
	fmt.Fprintf(k.w, "error:   %s%s\n", subject(setting, value), fmt.Sprintf(format, a...))
}

// subject formats "setting = "value": " for a finding.
func subject(setting, value string) string {
	switch {
	case setting == "":
		return ""
	case value == "":
		return setting + ": "
	}
	return fmt.Sprintf("%s = %q: ", setting, value)
}

func configCheck(c *cli.Context) error {
	path := cliapp.ConfigPath(c)
	cfg, err := config.Inspect(path)
	if cfg == nil {
		return cliapp.Classify(err)
	}
	k := &checker{w: c.App.Writer}
	// Every problem of the file, each with file:line, then what the file
	// system shows; the checks below skip the settings named here.
	var probs config.Problems
	errors.As(err, &probs)
	probs = append(probs, cfg.CheckFiles()...)
	bad := map[string]bool{}
	for _, p := range probs {
		k.fail("", "", "%s", strings.TrimPrefix(p.Error(), "config "))
		bad[p.Setting] = true
	}
	if len(probs) == 0 {
		fmt.Fprintf(k.w, "config %s: syntax and settings ok (%d lineage(s), %d provider(s))\n", cfg.Path, len(cfg.Lineages), len(cfg.Providers))
	}
	k.skip = func(setting string) bool {
		for s := range bad {
			if s == setting || strings.HasPrefix(s, setting+".") || strings.HasPrefix(s, setting+"[") {
				return true
			}
		}
		return false
	}

	used := map[string]bool{}
	for _, l := range cfg.Lineages {
		used[l.Provider] = true
	}
	names := make([]string, 0, len(cfg.Providers))
	for n := range cfg.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// A provider with a problem (a secret where a name belongs, a bad
		// server) is not built: its settings could reach the output.
		if !k.skip("provider." + n) {
			checkProvider(k, cfg.Providers[n], used[n])
		}
		if cfg.HostID != "" && used[n] && cfg.Providers[n].Type != "rfc2136" {
			// Cloudflare and libdns keep the registry too, but cannot make
			// a removal conditional on it in the same request.
			k.warn("provider."+n+".type", cfg.Providers[n].Type, "keeps the ownership registry of host_id = %q without prerequisites: a claim another host writes between this host's last read of the registry and its removal is not seen (a window of about one API call); where hosts share an owner, type = \"rfc2136\" closes it", cfg.HostID)
		}
	}
	for _, n := range cfg.LineageNames() {
		checkLineage(k, cfg.Lineages[n])
		if len(cfg.Lineages[n].Endpoints) == 0 {
			k.warn("lineage."+n+".endpoints", "[]", "none: danehook cannot see what Postfix presents, so a smtpd still serving an old chain goes unnoticed; set e.g. [\"127.0.0.1:25\"]")
		}
	}
	checkLocal(k, cfg)

	if k.errors > 0 {
		code := exitUsage
		if k.errors == k.postfixErrors {
			// Only Postfix's configuration is at fault: the class the
			// hooks exit with for the same refusal.
			code = cliapp.ExitPostfix
		}
		return fail(code, fmt.Errorf("config check: %s: %d error(s), %d warning(s)", cfg.Path, k.errors, k.warnings),
			"fix the errors above; warnings name things that do not exist yet or may be intended")
	}
	fmt.Fprintf(k.w, "config check: %s: ok, %d warning(s)\n", cfg.Path, k.warnings)
	return nil
}

// privateFile checks that the credential file named by setting exists, is a
// regular file and grants nothing to group or others. It reports a failure
// and returns false otherwise.
func privateFile(k *checker, setting, path string) bool {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k.fail(setting, path, "file does not exist")
		return false
	case err != nil:
		k.fail(setting, path, "%v", err)
		return false
	case !fi.Mode().IsRegular():
		k.fail(setting, path, "not a regular file")
		return false
	case fi.Mode().Perm()&0o077 != 0:
		k.fail(setting, path, "holds a secret but is accessible by group or others (mode %04o): run chmod 600 %s", fi.Mode().Perm(), path)
		return false
	}
	return true
}

func checkProvider(k *checker, p *config.Provider, used bool) {
	at := "provider." + p.Name
	if !used {
		k.warn(at, "", "not used by any lineage")
	}
	envMissing := false
	before := k.errors
	switch p.Type {
	case "rfc2136":
		switch {
		case p.KeyFile != "":
			if privateFile(k, at+".key_file", p.KeyFile) {
				if key, err := dnsupdate.LoadTSIGKeyFile(p.KeyFile); err != nil {
					k.fail(at+".key_file", p.KeyFile, "%v", err)
				} else {
					k.ok(at+".key_file", p.KeyFile, "TSIG key %s (%s)", key.Name, key.Algorithm)
				}
			}
			if p.SecretFile != "" || p.SecretEnv != "" {
				k.warn(at, "", "key_file is used; secret_file and secret_env are ignored")
			}
		case p.SecretFile != "":
			if privateFile(k, at+".secret_file", p.SecretFile) {
				if key, err := dnsupdate.TSIGKeyFromSecretFile(p.KeyName, p.KeyAlgorithm, p.SecretFile); err != nil {
					k.fail(at+".secret_file", p.SecretFile, "%v", err)
				} else {
					k.ok(at+".secret_file", p.SecretFile, "TSIG key %s (%s)", key.Name, key.Algorithm)
				}
			}
		default:
			if os.Getenv(p.SecretEnv) == "" {
				envMissing = true
				k.warn(at+".secret_env", p.SecretEnv, "not set in this environment; the hooks and the timer need it in theirs (systemd: a drop-in with EnvironmentFile=)")
			} else if key, err := dnsupdate.TSIGKeyFromEnv(p.KeyName, p.KeyAlgorithm, p.SecretEnv); err != nil {
				k.fail(at+".secret_env", p.SecretEnv, "%v", err)
			} else {
				k.ok(at+".secret_env", p.SecretEnv, "TSIG key %s (%s)", key.Name, key.Algorithm)
			}
		}
	case "cloudflare":
		if p.APITokenFile != "" {
			if privateFile(k, at+".api_token_file", p.APITokenFile) {
				if _, err := dnsupdate.CloudflareTokenFromFile(p.APITokenFile); err != nil {
					k.fail(at+".api_token_file", p.APITokenFile, "%v", err)
				} else {
					k.ok(at+".api_token_file", p.APITokenFile, "API token readable")
				}
			}
		} else if os.Getenv(p.APITokenEnv) == "" {
			envMissing = true
			k.warn(at+".api_token_env", p.APITokenEnv, "not set in this environment; the hooks and the timer need it in theirs (systemd: a drop-in with EnvironmentFile=)")
		}
	case "libdns":
		spec, err := libdnsprov.Lookup(p.LibdnsName)
		if err != nil {
			k.fail(at+".name", p.LibdnsName, "%v", err)
			break
		}
		env := p.APITokenEnv
		if env == "" {
			env = spec.TokenEnv
		}
		switch {
		case spec.TokenEnv == "":
		case p.APITokenFile != "":
			privateFile(k, at+".api_token_file", p.APITokenFile)
		case os.Getenv(env) == "":
			envMissing = true
			k.warn(at+".api_token_env", env, "not set in this environment; the hooks and the timer need it in theirs (systemd: a drop-in with EnvironmentFile=)")
		}
	}
	// The engine builds the provider exactly so; this catches what the
	// per-file checks above do not know about.
	if k.errors == before && !envMissing {
		if _, err := cliapp.NewPublisher(p); err != nil {
			k.fail(at, "", "%v", err)
		}
	}
}

func checkLineage(k *checker, l *config.Lineage) {
	at := "lineage." + l.Name
	dir := filepath.Dir(l.ChainFile)
	if l.ChainFile == "" || k.skip(at+".chain_file") {
		// reported with the configuration's problems
	} else if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		k.fail(at+".chain_file", l.ChainFile, "directory %s does not exist: install -d -m 0700 %s ('danectl init postfix' prints it)", dir, dir)
	} else if fi, err := os.Stat(l.ChainFile); errors.Is(err, fs.ErrNotExist) {
		k.ok(at+".chain_file", l.ChainFile, "directory exists; dane-deploy writes the file at the first issuance")
	} else if err != nil {
		k.fail(at+".chain_file", l.ChainFile, "%v", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		k.warn(at+".chain_file", l.ChainFile, "holds the private key but is accessible by group or others (mode %04o): chmod 600 %s", fi.Mode().Perm(), l.ChainFile)
	} else {
		k.ok(at+".chain_file", l.ChainFile, "exists")
	}

	if l.CertbotLineage != "" {
		if fi, err := os.Stat(l.CertbotLineage); err != nil || !fi.IsDir() {
			k.warn(at+".certbot_lineage", l.CertbotLineage, "does not exist (not issued yet?)")
		} else if conf := certbot.RenewalConf(l.CertbotLineage); fileExists(conf) {
			if ok, err := certbot.ReuseKey(conf); err != nil {
				k.warn(at+".certbot_lineage", l.CertbotLineage, "%v", err)
			} else if !ok {
				k.warn(at+".certbot_lineage", l.CertbotLineage, "reuse_key is not True in %s: the next renewal would make a new key; dane-prerenew or 'danectl init certbot' sets it", conf)
			} else {
				k.ok(at+".certbot_lineage", l.CertbotLineage, "exists; reuse_key = True")
			}
		} else {
			// certbot certonly --csr saves only the certificate files: no
			// renewal configuration, no live/ links, and certbot neither
			// renews it nor runs deploy hooks for it (certbot 2.1
			// main.certonly returns after _csr_get_and_save_cert).
			k.fail(at+".certbot_lineage", l.CertbotLineage, "is not a certbot lineage: %s does not exist, so certbot never renews it and never runs danehook's deploy hook (a certificate from 'certbot certonly --csr' has no lineage); issue it as a lineage instead, 'certbot certonly --cert-name %s --reuse-key -d …' (danehook keeps reuse_key = True, which pins the key as a fixed CSR would), or use lego with lego_csr, which renews a pinned CSR", conf, certbot.LineageName(l.CertbotLineage))
		}
	}
	if len(l.RenewCommand) > 0 && strings.Contains(filepath.Base(l.RenewCommand[0]), "certbot") && slices.Contains(l.RenewCommand, "--csr") {
		k.fail(at+".renew_command", strings.Join(l.RenewCommand, " "), "runs 'certbot … --csr': certbot makes no lineage for a CSR, so it never renews it and runs no deploy hook, and danehook cannot see the renewal; use a certbot lineage with reuse_key = True ('certbot certonly --cert-name NAME --reuse-key', renew_command unset) or lego with lego_csr")
	}
	checkDehydrated(k, at, l)
	checkAcmeSh(k, at, l)
	for _, f := range []struct{ setting, path, absent string }{
		{"lego_cert", l.LegoCert, "does not exist (not issued yet?)"},
		{"lego_key", l.LegoKey, "does not exist (not issued yet?)"},
		{"lego_csr", l.LegoCSR, "does not exist yet: dane-prerenew makes it from lego_key"},
	} {
		if f.path == "" {
			continue
		}
		if fileExists(f.path) {
			k.ok(at+"."+f.setting, f.path, "exists")
		} else {
			k.warn(at+"."+f.setting, f.path, "%s", f.absent)
		}
	}
	if l.CAFile != "" && !fileExists(l.CAFile) {
		k.fail(at+".ca_file", l.CAFile, "file does not exist")
	}
	if l.TA == chain.TAIssuerSet {
		checkIssuerSet(k, l, time.Now())
	}
	if len(l.Endpoints) == 0 {
		k.warn(at+".endpoints", "", "none: the live STARTTLS chain is not verified after a reload")
	}
	for i, ep := range l.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			k.fail(fmt.Sprintf("%s.endpoints[%d]", at, i), ep, "want host:port, e.g. \"127.0.0.1:25\": %v", err)
		}
	}
}

// checkIssuerSet reads the lineage's issuer set and warns when it is stale
// for the chain in the chain file or the ACME client's files
// (chain.IssuerSet.Stale): a renewal onto a non-member is a DNS change and
// a delayed switch, better known before it happens.
func checkIssuerSet(k *checker, l *config.Lineage, now time.Time) {
	at := "lineage." + l.Name + ".issuer_set"
	set, err := chain.LoadIssuerSet(l.IssuerSet)
	if err != nil {
		k.fail(at, l.IssuerSet, "%v", err)
		return
	}
	k.ok(at, l.IssuerSet, "%d intermediate(s): %d RSA, %d ECDSA valid now", len(set.Certs), len(set.Members(chain.AlgorithmRSA, now)), len(set.Members(chain.AlgorithmECDSA, now)))
	var chains []*chain.Chain
	if c, err := chain.Load(l.ChainFile, l.ChainFile); err == nil {
		chains = append(chains, c)
	}
	switch {
	case l.CertbotLineage != "":
		if c, err := chain.FromCertbotLineage(l.CertbotLineage); err == nil {
			chains = append(chains, c)
		}
	case l.LegoCert != "":
		if c, err := chain.FromLego(l.LegoCert, l.LegoKey, ""); err == nil {
			chains = append(chains, c)
		}
	}
	seen := map[string]bool{}
	for _, c := range chains {
		for _, w := range set.Stale(c, now) {
			if !seen[w] {
				seen[w] = true
				k.warn(at, l.IssuerSet, "%s", w)
			}
		}
	}
}

// checkLocal checks the state directory and the Postfix instance.
func checkLocal(k *checker, cfg *config.Config) {
	st := cfg.State()
	if fi, err := os.Stat(st); errors.Is(err, fs.ErrNotExist) {
		k.ok("state_dir", st, "does not exist yet; created (0700) at the first run")
	} else if err != nil || !fi.IsDir() {
		k.fail("state_dir", st, "not a directory")
	} else if fi.Mode().Perm()&0o077 != 0 {
		k.warn("state_dir", st, "holds staged keys but is accessible by group or others (mode %04o): chmod 700 %s", fi.Mode().Perm(), st)
	}
	if d := cfg.Postfix.ConfigDir; d != "" {
		if !fileExists(filepath.Join(d, "main.cf")) {
			k.fail("postfix.config_dir", d, "no main.cf there")
		}
	}
	cmd := cfg.Postfix.Command
	if cmd == "" {
		cmd = "postfix"
	}
	if _, err := exec.LookPath(cmd); err != nil {
		k.warn("postfix.command", cmd, "not found: dane-reload cannot check or reload Postfix")
		return
	}
	// What every smtpd service reads. When a service reads a file that
	// exists and is not a lineage's chain file (certbot's live/ files,
	// Debian's snakeoil), Postfix serves a chain danehook does not
	// protect and every hook run and tick refuses: an error here too
	// (exit 8). When it reads none of the chain files yet but serves no
	// chain either (no certificate parameter, or files that do not exist:
	// the first issuance), a warning, because the README's order
	// configures Postfix after the first chain file exists.
	var want []string
	for _, n := range cfg.LineageNames() {
		if f := cfg.Lineages[n].ChainFile; !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	served, err := cliapp.Postfix(cfg).Served(ctx)
	dir := cfg.Postfix.ConfigDir
	if dir == "" {
		dir = "/etc/postfix"
	}
	switch {
	case err != nil:
		k.warn("postfix", dir, "cannot read what Postfix serves: %v", err)
	case len(want) > 0:
		if err := served.Check(want); err != nil {
			var nse *postfix.NotServedError
			hint := ""
			if errors.As(err, &nse) {
				hint = "; " + nse.Hint()
				if nse.Fix != "" && slices.ContainsFunc(want, func(f string) bool { return !fileExists(f) }) {
					// A reload before the chain file exists would leave
					// Postfix without STARTTLS: tick installs it first.
					hint = "; once 'danectl status' shows the switch safe, run: " + nse.Fix + " && danectl tick"
				}
			}
			if foreign := foreignFiles(served, want); len(foreign) > 0 {
				k.postfixErrors++
				k.fail("postfix", dir, "%v: Postfix serves %s, which danehook does not protect (the ACME client replaces such files at a renewal): every hook run, tick, status and check refuses until every smtpd service reads the chain files%s",
					err, strings.Join(foreign, ", "), hint)
				break
			}
			k.warn("postfix", dir, "%v: Postfix serves no TLS chain yet (the files it names do not exist); the hooks install the first chain file without reloading until it reads it%s", err, hint)
		} else {
			k.ok("postfix", dir, "every smtpd service that offers TLS reads the chain files")
		}
	}
}

// foreignFiles returns the files that smtpd services offering TLS read,
// that exist, and that are none of want (compared cleaned, through
// symbolic links): what Postfix serves that danehook does not protect.
func foreignFiles(served *postfix.Config, want []string) []string {
	canon := func(f string) string {
		f = filepath.Clean(f)
		if r, err := filepath.EvalSymlinks(f); err == nil {
			return r
		}
		return f
	}
	var ours, out []string
	for _, f := range want {
		ours = append(ours, canon(f))
	}
	for _, svc := range served.Services {
		if !svc.Offers() {
			continue
		}
		for _, f := range svc.Files() {
			if fileExists(f) && !slices.Contains(ours, canon(f)) && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkDehydrated checks a dehydrated lineage: its certificate directory,
// its main configuration, and that renewals keep the key (the effective
// PRIVATE_KEY_RENEW, sourced as dehydrated does).
func checkDehydrated(k *checker, at string, l *config.Lineage) {
	if l.DehydratedCert == "" {
		return
	}
	if l.DehydratedConfig != "" && !fileExists(l.DehydratedConfig) {
		k.fail(at+".dehydrated_config", l.DehydratedConfig, "file does not exist: name dehydrated's main configuration (Debian: /etc/dehydrated/config)")
		return
	}
	main := dehydrated.MainConfig(l.DehydratedConfig)
	s, err := dehydrated.Read(context.Background(), main, l.DehydratedCert)
	switch {
	case err != nil:
		k.fail(at+".dehydrated_cert", l.DehydratedCert, "%v", err)
		return
	case !s.Pinned():
		k.warn(at+".dehydrated_cert", l.DehydratedCert, "PRIVATE_KEY_RENEW is %q (main configuration %q): the next renewal would make a new key; dane-prerenew, as dehydrated's startup_hook (hooks/dehydrated/hook), sets PRIVATE_KEY_RENEW=\"no\" in %s", s.KeyRenew, main, s.CertConfig)
	}
	if fi, err := os.Stat(l.DehydratedCert); err != nil || !fi.IsDir() {
		k.warn(at+".dehydrated_cert", l.DehydratedCert, "does not exist (not issued yet?)")
	} else if s.Pinned() {
		k.ok(at+".dehydrated_cert", l.DehydratedCert, `exists; PRIVATE_KEY_RENEW="no"`)
	}
}

// checkAcmeSh checks an acme.sh lineage: its domain directory and that
// renewals keep the key (no Le_ForceNewDomainKey).
func checkAcmeSh(k *checker, at string, l *config.Lineage) {
	if l.AcmeShDir == "" {
		return
	}
	a := acmesh.LayoutOf(l.AcmeShDir)
	if !fileExists(a.Conf) {
		k.warn(at+".acmesh_dir", l.AcmeShDir, "%s does not exist (not issued yet, or not an acme.sh domain directory <home>/<domain>[_ecc])", a.Conf)
		return
	}
	force, err := acmesh.ForcesNewKey(a.Conf)
	switch {
	case err != nil:
		k.fail(at+".acmesh_dir", l.AcmeShDir, "%v", err)
	case force:
		k.warn(at+".acmesh_dir", l.AcmeShDir, "Le_ForceNewDomainKey='1' in %s (--always-force-new-domain-key): every renewal makes a new key; dane-prerenew removes it, and dane-deploy after each renewal", a.Conf)
	default:
		k.ok(at+".acmesh_dir", l.AcmeShDir, "exists; acme.sh keeps the domain key")
	}
}
