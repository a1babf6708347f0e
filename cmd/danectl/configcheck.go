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
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
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
			Description: `check reads the configuration (syntax, settings, references between tables;
errors give file:line) and then every file it names:

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

Exit codes: 0 valid (warnings allowed), 2 errors found.`,
			Flags:  []cli.Flag{cliapp.ConfigFlag},
			Action: configCheck,
		}},
	}
}

// checker collects the findings of 'danectl config check'.
type checker struct {
	w                io.Writer
	errors, warnings int
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
	cfg, err := config.Load(path)
	if err != nil {
		return cliapp.Classify(err)
	}
	k := &checker{w: c.App.Writer}
	fmt.Fprintf(k.w, "config %s: syntax and settings ok (%d lineage(s), %d provider(s))\n", cfg.Path, len(cfg.Lineages), len(cfg.Providers))

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
		checkProvider(k, cfg.Providers[n], used[n])
		if cfg.HostID != "" && used[n] && cfg.Providers[n].Type != "rfc2136" {
			k.warn("provider."+n+".type", cfg.Providers[n].Type, "keeps no ownership registry: host_id = %q has no effect at its owners, so another host sharing an owner there is not protected from this host's cleanup", cfg.HostID)
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
		return fail(exitUsage, fmt.Errorf("config check: %s: %d error(s), %d warning(s)", cfg.Path, k.errors, k.warnings),
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
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
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
			k.ok(at+".certbot_lineage", l.CertbotLineage, "exists")
		}
	}
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
	// What every smtpd service reads: the hooks refuse to install while
	// it is not the lineages' chain files (a warning here, because the
	// README's order configures Postfix after danehook).
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
			}
			k.warn("postfix", dir, "%v: the hooks install nothing until it does%s", err, hint)
		} else {
			k.ok("postfix", dir, "every smtpd service that offers TLS reads the chain files")
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
