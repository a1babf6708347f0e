package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/lego"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/urfave/cli/v2"
)

// Defaults of 'danectl init certbot': certbot's configuration directory and
// where the danehook package installs the hook wrappers (hooks/ in the source).
const (
	defaultCertbotDir = "/etc/letsencrypt"
	defaultHooksDir   = "/usr/share/danehook/hooks"
	// certbotHookName is the file name of danehook's hook in each of
	// certbot's renewal-hooks/{pre,deploy,post} directories.
	certbotHookName = "danehook"
)

// certbotPhases are certbot's directory hook phases, each with the danehook
// binary its wrapper runs.
var certbotPhases = []struct{ dir, binary string }{
	{"pre", "dane-prerenew"},
	{"deploy", "dane-deploy"},
	{"post", "dane-reload"},
}

var dryRunFlag = &cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would change, change nothing"}

// initCommand is "danectl init".
func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "wire danehook into certbot, lego or Postfix (idempotent)",
		Description: `init certbot links the hooks into certbot and makes its lineages reuse
their key; init lego prints the lego flags and .lego.yml snippet; init postfix
prints the postconf commands that point Postfix at the chain files. Each reads
the configuration and can run again at any time.`,
		Subcommands: []*cli.Command{
			{
				Name:  "certbot",
				Usage: "link danehook's hooks into certbot's renewal-hooks and set reuse_key = True",
				Description: `Links <hooks-dir>/certbot/{pre,deploy,post}/danehook into
<certbot-dir>/renewal-hooks/{pre,deploy,post}/danehook, so that certbot runs
dane-prerenew, dane-deploy and dane-reload on every renewal. A hook already in
place is left alone; another file at that path is an error that names it and
nothing is changed. Then, for every lineage with certbot_lineage, it checks
reuse_key in certbot's renewal/<name>.conf and sets it to True (as
dane-prerenew does) so that renewals keep the key the TLSA records pin.
certbot runs directory hooks only on 'certbot renew': for a lineage not yet
issued it prints the first issuance, 'certbot certonly ... && dane-reload',
without hook flags (certbot would store them in renewal/<name>.conf and run
them after danehook is removed). It records the certbot directory in the
state directory (certbot-dirs), so that removing the package takes
danehook's hooks out of its renewal/*.conf.

Exit codes: 0 done (or, with --dry-run, shown), 2 bad input or a conflicting file.`,
				Flags: []cli.Flag{
					cliapp.ConfigFlag,
					dryRunFlag,
					&cli.StringFlag{Name: "certbot-dir", Value: defaultCertbotDir, Usage: "certbot's configuration `DIR` (certbot --config-dir)"},
					&cli.StringFlag{Name: "hooks-dir", Value: defaultHooksDir, Usage: "`DIR` holding danehook's hook wrappers (certbot/{pre,deploy,post}/danehook)"},
				},
				Action: initCertbot,
			},
			{
				Name:  "lego",
				Usage: "print the installed lego's flags (and, for v5, the .lego.yml snippet) for every lineage",
				Description: `Runs 'lego --version' (--lego names the binary) and prints, for every lineage
in the configuration, the flags of that major version only: lego v5 (lego run
with --pre-hook, --deploy-hook, --post-hook and --reuse-key or --csr) and the
same as a .lego.yml snippet, or lego v4 (--run-hook/--renew-hook; lego v4 has
no pre or post hook, so dane-deploy reloads by itself). --lego-version 4|5
skips the detection; when lego is not found or its version is not 4 or 5,
both are printed, and the output says why.
With --write FILE the .lego.yml snippet is written to FILE (mode 0644); an
existing FILE with other content is an error and is not overwritten.

Exit codes: 0 done, 2 bad input or a conflicting FILE.`,
				Flags: []cli.Flag{
					cliapp.ConfigFlag,
					dryRunFlag,
					&cli.StringFlag{Name: "write", Usage: "write the .lego.yml snippet to `FILE`"},
					&cli.StringFlag{Name: "lego", Value: "lego", Usage: "the lego `BINARY` whose major version is detected ('lego --version')"},
					&cli.IntFlag{Name: "lego-version", Usage: "print the flags of lego `MAJOR` (4 or 5) without running lego"},
				},
				Action: initLego,
			},
			{
				Name:  "postfix",
				Usage: "print the postconf command that points smtpd_tls_chain_files at the chain files",
				Description: `Prints the commands that make Postfix serve danehook's chain files:
'install -d -m 0700' for their directories and one
'postconf -e "smtpd_tls_chain_files = ..."' (Postfix >= 3.4), with [postfix]
config_dir as postconf -c, then 'postfix check && postfix reload'. It changes
nothing itself; when postconf is installed it also shows the current value.
While a chain file does not exist yet (before the first switch), the last
line is 'danectl tick' instead, which installs the files once their records
are aged and reloads Postfix: run the lines when 'danectl status' shows the
switch safe (a reload before the file exists leaves Postfix without STARTTLS).

Exit codes: 0 done, 2 bad input.`,
				Flags:  []cli.Flag{cliapp.ConfigFlag, dryRunFlag},
				Action: initPostfix,
			},
		},
	}
}

// loadConfig reads the configuration named by --config (or
// $DANEHOOK_CONFIG, or the default path).
func loadConfig(c *cli.Context) (*config.Config, error) {
	cfg, err := config.Load(cliapp.ConfigPath(c))
	if err != nil {
		return nil, cliapp.Classify(err)
	}
	return cfg, nil
}

// hookLink is one certbot directory hook: the wrapper src linked at dst.
type hookLink struct {
	phase, binary string
	src, dst      string
	state         string // "create", "ok"
	note          string // why an existing file counts as in place
}

func initCertbot(c *cli.Context) error {
	w := c.App.Writer
	dry := c.Bool("dry-run")
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	certbotDir, err := filepath.Abs(c.String("certbot-dir"))
	if err != nil {
		return fail(exitUsage, err, "")
	}
	hooksDir, err := filepath.Abs(c.String("hooks-dir"))
	if err != nil {
		return fail(exitUsage, err, "")
	}
	if fi, err := os.Stat(certbotDir); err != nil || !fi.IsDir() {
		return fail(exitUsage, fmt.Errorf("init certbot: certbot configuration directory %q does not exist", certbotDir),
			"is certbot installed and has it run once? pass --certbot-dir if it uses another --config-dir")
	}

	links, err := planCertbotLinks(certbotDir, hooksDir)
	if err != nil {
		return err
	}
	changes := 0
	for _, l := range links {
		switch l.state {
		case "ok":
			fmt.Fprintf(w, "hook %-6s %s: already in place%s\n", l.phase, l.dst, l.note)
		case "create":
			changes++
			if dry {
				fmt.Fprintf(w, "hook %-6s %s -> %s: would link\n", l.phase, l.dst, l.src)
				continue
			}
			if err := os.MkdirAll(filepath.Dir(l.dst), 0o755); err != nil {
				return fail(exitUsage, fmt.Errorf("init certbot: %w", err), "")
			}
			if err := os.Symlink(l.src, l.dst); err != nil {
				return fail(exitUsage, fmt.Errorf("init certbot: link %s: %w", l.dst, err), "")
			}
			fmt.Fprintf(w, "hook %-6s %s -> %s: linked\n", l.phase, l.dst, l.src)
		}
	}

	if !dry {
		if err := recordCertbotDir(cfg.State(), certbotDir); err != nil {
			return fail(exitUsage, fmt.Errorf("init certbot: %w", err), "")
		}
	}

	for _, name := range cfg.LineageNames() {
		l := cfg.Lineages[name]
		if l.CertbotLineage == "" {
			fmt.Fprintf(w, "lineage %s: no certbot_lineage (a lego lineage?): skipped\n", name)
			continue
		}
		live := filepath.Clean(l.CertbotLineage)
		outside := ""
		if rel, err := filepath.Rel(certbotDir, live); err != nil || strings.HasPrefix(rel, "..") {
			outside = fmt.Sprintf(" (note: certbot_lineage is outside %s)", certbotDir)
		}
		conf := certbot.RenewalConf(live)
		if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(w, "lineage %s: %s does not exist yet (not issued)%s; certbot runs directory hooks only on 'certbot renew', so run dane-reload after the first issuance (hooks given as flags would be stored in the renewal configuration):\n  %s\n",
				name, conf, outside, certonlyCommand(certbotDir, filepath.Base(live), l.Hosts))
			continue
		}
		ok, err := certbot.ReuseKey(conf)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("lineage %q: %w", name, err), "")
		}
		switch {
		case ok:
			fmt.Fprintf(w, "lineage %s: %s: reuse_key = True already%s\n", name, conf, outside)
		case dry:
			changes++
			fmt.Fprintf(w, "lineage %s: %s: would set reuse_key = True (renewals would otherwise make a new key)%s\n", name, conf, outside)
		default:
			changes++
			if _, err := certbot.EnsureReuseKey(conf); err != nil {
				return fail(exitUsage, fmt.Errorf("lineage %q: %w", name, err), "")
			}
			fmt.Fprintf(w, "lineage %s: %s: set reuse_key = True%s\n", name, conf, outside)
		}
	}
	if abs, err := filepath.Abs(cfg.Path); err == nil && abs != config.DefaultPath {
		fmt.Fprintf(w, "note: the hooks read %s unless certbot runs them with %s=%s in its environment\n", config.DefaultPath, config.EnvConfig, abs)
	}
	summary(w, changes, dry)
	return nil
}

// CertbotDirsFile is the file in the state directory that lists, one per
// line, every certbot configuration directory 'danectl init certbot'
// linked hooks into: the package's removal script
// (packaging/scripts/postremove.sh) removes danehook's hook entries from
// their renewal/*.conf, so that certbot renewals keep working without
// danehook.
const CertbotDirsFile = "certbot-dirs"

// recordCertbotDir adds dir to stateDir/CertbotDirsFile (0600, created
// with stateDir when missing) unless it is listed already.
func recordCertbotDir(stateDir, dir string) error {
	path := filepath.Join(stateDir, CertbotDirsFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == dir {
			return nil
		}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, dir); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// certonlyCommand is the first issuance of a lineage, followed by
// dane-reload. No hook is given as a flag: certbot would store it in
// renewal/<name>.conf and run it at every renewal, also after danehook is
// removed (exit 127). certonly runs no directory hooks, so dane-reload
// carries the new certificate on (it publishes its records and records the
// pending switch, as for any renewal made without hooks); renewals run the
// directory hooks, which certbot skips once removal left them dangling.
func certonlyCommand(certbotDir, name string, hosts []string) string {
	var b strings.Builder
	b.WriteString("certbot certonly")
	if certbotDir != defaultCertbotDir {
		b.WriteString(" --config-dir " + shellWord(certbotDir))
	}
	b.WriteString(" --reuse-key --cert-name " + shellWord(name))
	for _, h := range hosts {
		b.WriteString(" -d " + shellWord(h))
	}
	b.WriteString(" ... && dane-reload")
	return b.String()
}

// planCertbotLinks decides, for each certbot phase, whether danehook's hook
// must be linked or is already in place. Any other file at a hook path is an
// error naming every such file; nothing is changed then.
func planCertbotLinks(certbotDir, hooksDir string) ([]hookLink, error) {
	var links []hookLink
	var conflicts []string
	for _, p := range certbotPhases {
		l := hookLink{
			phase:  p.dir,
			binary: p.binary,
			src:    filepath.Join(hooksDir, "certbot", p.dir, certbotHookName),
			dst:    filepath.Join(certbotDir, "renewal-hooks", p.dir, certbotHookName),
		}
		fi, err := os.Stat(l.src)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, fail(exitUsage, fmt.Errorf("init certbot: hook wrapper %q is missing or not an executable file", l.src),
				"pass --hooks-dir: the hooks/ directory of the danehook package (/usr/share/danehook/hooks) or source tree")
		}
		state, note, conflict := existingHook(l)
		if conflict != "" {
			conflicts = append(conflicts, conflict)
			continue
		}
		l.state, l.note = state, note
		links = append(links, l)
	}
	if len(conflicts) > 0 {
		return nil, fail(exitUsage, fmt.Errorf("init certbot: %s; nothing was changed", strings.Join(conflicts, "; ")),
			"move the file away (certbot runs every file in renewal-hooks/), or link danehook's hooks by hand under another name")
	}
	return links, nil
}

// existingHook tells whether l.dst is missing ("create"), already danehook's
// hook ("ok": a link to the wrapper or to the phase's binary, or a copy of
// the wrapper), or another file (conflict describes it).
func existingHook(l hookLink) (state, note, conflict string) {
	fi, err := os.Lstat(l.dst)
	if errors.Is(err, fs.ErrNotExist) {
		return "create", "", ""
	}
	if err != nil {
		return "", "", err.Error()
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(l.dst)
		resolved, rerr := filepath.EvalSymlinks(l.dst)
		srcResolved, _ := filepath.EvalSymlinks(l.src)
		switch {
		case target == l.src || (rerr == nil && resolved == srcResolved):
			return "ok", "", ""
		case rerr == nil && filepath.Base(resolved) == l.binary:
			return "ok", fmt.Sprintf(" (links to %s)", resolved), ""
		}
		return "", "", fmt.Sprintf("%s exists and is a symlink to %q, not danehook's %s hook", l.dst, target, l.phase)
	}
	if fi.Mode().IsRegular() {
		have, err1 := os.ReadFile(l.dst)
		want, err2 := os.ReadFile(l.src)
		if err1 == nil && err2 == nil && bytes.Equal(have, want) {
			return "ok", " (a copy of " + l.src + ")", ""
		}
	}
	return "", "", fmt.Sprintf("%s exists and is not danehook's %s hook", l.dst, l.phase)
}

func summary(w io.Writer, changes int, dry bool) {
	switch {
	case changes == 0:
		fmt.Fprintln(w, "nothing to change")
	case dry:
		fmt.Fprintf(w, "%d change(s) would be made (run without --dry-run to make them)\n", changes)
	default:
		fmt.Fprintf(w, "%d change(s) made\n", changes)
	}
}

// legoMajor returns the lego major version whose flags 'init lego' prints
// (4, 5, or 0 for both) and a line saying how it was found: forced (4 or
// 5), else the output of "binary --version" (lego v4 and v5 both print
// "lego version vX.Y.Z… os/arch"; the go-acme/lego cmd's version command),
// run with a 5 s timeout and no shell.
func legoMajor(ctx context.Context, binary string, forced int) (int, string) {
	switch forced {
	case 4, 5:
		return forced, fmt.Sprintf("lego v%d flags (--lego-version %d)", forced, forced)
	case 0:
	default:
		return 0, fmt.Sprintf("--lego-version %d is neither 4 nor 5: printing the flags of lego v5 and v4", forced)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--version").CombinedOutput()
	if err != nil {
		return 0, fmt.Sprintf("%q --version failed (%v): printing the flags of lego v5 and v4; pass --lego BINARY or --lego-version 4|5", binary, err)
	}
	m := legoVersion.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Sprintf("%q --version printed %q, not a lego version: printing the flags of lego v5 and v4", binary, strings.TrimSpace(string(out)))
	}
	v := string(m[1])
	switch major, _ := strconv.Atoi(string(m[2])); major {
	case 4, 5:
		return major, fmt.Sprintf("lego %s found (%s --version): its flags only", v, binary)
	default:
		return 0, fmt.Sprintf("lego %s found (%s --version), neither v4 nor v5: printing the flags of lego v5 and v4", v, binary)
	}
}

// legoVersion matches lego's version line: "lego version v4.35.2+dev-release linux/amd64".
var legoVersion = regexp.MustCompile(`(?m)^lego version (v?([0-9]+)\.[0-9]+\S*)`)

// legoLineage is what the lego output needs to know about one lineage.
type legoLineage struct {
	name    string
	domains []string
	path    string // lego --path, from lego_cert (<path>/certificates/<name>.crt); "" unknown
	csr     string // lego --csr (lego_csr); "" none
	keyType string // lego --key-type (EC256, RSA2048, ...); "" unknown
	hasKey  bool   // lego_key is set
}

func legoLineages(cfg *config.Config) []legoLineage {
	var out []legoLineage
	for _, name := range cfg.LineageNames() {
		l := cfg.Lineages[name]
		ll := legoLineage{name: name, domains: l.Hosts, csr: l.LegoCSR, hasKey: l.LegoKey != ""}
		if l.LegoCert != "" {
			if d := filepath.Dir(l.LegoCert); filepath.Base(d) == "certificates" {
				ll.path = filepath.Dir(d)
			}
		}
		for _, f := range []string{l.LegoKey, l.ChainFile} {
			if f == "" {
				continue
			}
			if kt := legoKeyType(f); kt != "" {
				ll.keyType = kt
				break
			}
		}
		out = append(out, ll)
	}
	return out
}

// legoKeyType returns lego's --key-type for the private key in file
// (lego.KeyType), or "" when the file cannot be read or lego has no such key
// type.
func legoKeyType(file string) string {
	key, err := chain.ReadKey(file)
	if err != nil {
		return ""
	}
	return lego.KeyType(key)
}

// hookCommand is the hook command line lego runs (it splits on white space
// and runs no shell): the binary, with --config when the configuration is
// not at the default path.
func hookCommand(binary, cfgPath string) string {
	if cfgPath == config.DefaultPath || strings.ContainsAny(cfgPath, " \t\n") {
		return binary
	}
	return binary + " --config " + cfgPath
}

var (
	shellSafe   = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)
	yamlPlain   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	yamlSpecial = regexp.MustCompile(`^(?i:true|false|yes|no|on|off|null|~|[0-9.]+)$`)
)

// shellWord quotes s for a POSIX shell when it needs quoting.
func shellWord(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// yamlString quotes s for YAML when it is not a plain safe scalar.
func yamlString(s string) string {
	if s != "" && yamlPlain.MatchString(s) && !yamlSpecial.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// legoYAML is the .lego.yml snippet (lego v5 cmd/internal/configuration:
// hooks.{pre,deploy,post}.command, certificates.<name>.{domains,csr,keyType,renew.reuseKey}).
func legoYAML(cfg *config.Config, ls []legoLineage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# danehook: lego v5 configuration snippet, generated by 'danectl init lego' from %s.\n", cfg.Path)
	b.WriteString("# Merge it into your .lego.yml (add your account, server and challenge settings).\n")
	b.WriteString("hooks:\n")
	for _, h := range []struct{ phase, binary string }{{"pre", "dane-prerenew"}, {"deploy", "dane-deploy"}, {"post", "dane-reload"}} {
		fmt.Fprintf(&b, "  %s:\n    command: %s\n", h.phase, yamlString(hookCommand(h.binary, cfg.Path)))
	}
	b.WriteString("certificates:\n")
	for _, l := range ls {
		fmt.Fprintf(&b, "  %s:\n", yamlString(l.name))
		if l.csr != "" {
			fmt.Fprintf(&b, "    csr: %s   # kept made from lego_key by dane-prerenew\n", yamlString(l.csr))
		} else {
			b.WriteString("    domains:\n")
			for _, d := range l.domains {
				fmt.Fprintf(&b, "      - %s\n", yamlString(d))
			}
		}
		if l.keyType != "" {
			fmt.Fprintf(&b, "    keyType: %s\n", l.keyType)
		}
		if l.csr == "" {
			b.WriteString("    renew:\n      reuseKey: true\n")
		}
	}
	return b.String()
}

func initLego(c *cli.Context) error {
	w := c.App.Writer
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	// lego runs the hooks from its own working directory.
	if abs, err := filepath.Abs(cfg.Path); err == nil {
		cfg.Path = abs
	}
	major, how := legoMajor(c.Context, c.String("lego"), c.Int("lego-version"))
	fmt.Fprintf(w, "# %s\n", how)
	if major == 4 && c.String("write") != "" {
		return fail(exitUsage, errors.New("init lego: --write writes a .lego.yml, which only lego v5 reads; lego v4 takes flags only"),
			"drop --write, or pass --lego-version 5 for a lego v5 installation")
	}
	ls := legoLineages(cfg)
	for _, l := range ls {
		path := ""
		if l.path != "" {
			path = " --path " + shellWord(l.path)
		}
		kt := ""
		if l.keyType != "" {
			kt = " --key-type " + l.keyType
		}
		var names strings.Builder
		for _, d := range l.domains {
			names.WriteString(" --domains " + shellWord(d))
		}
		fmt.Fprintf(w, "# lineage %s\n", l.name)
		if l.path == "" {
			fmt.Fprintf(w, "# (set lego_cert and lego_key in the configuration so that 'danectl plan' sees the certificate before the first hook run)\n")
		}
		if major != 4 {
			fmt.Fprintf(w, "# lego v5: add your account and challenge flags (--email, --accept-tos, --http or --dns ...)\n")
			if l.csr != "" {
				fmt.Fprintf(w, "lego run%s --cert.name %s --csr %s \\\n", path, shellWord(l.name), shellWord(l.csr))
			} else {
				fmt.Fprintf(w, "lego run%s --cert.name %s%s%s --reuse-key \\\n", path, shellWord(l.name), names.String(), kt)
			}
			fmt.Fprintf(w, "  --pre-hook %s --deploy-hook %s --post-hook %s\n",
				shellWord(hookCommand("dane-prerenew", cfg.Path)), shellWord(hookCommand("dane-deploy", cfg.Path)), shellWord(hookCommand("dane-reload", cfg.Path)))
		}
		if major == 5 {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "# lego v4: no pre or post hook; dane-deploy also reloads and verifies Postfix\n")
		// lego v4 names the certificate after its first --domains, and
		// dane-deploy finds the lineage by that name (or by lego_key).
		v4 := []string{}
		if slices.Contains(l.domains, l.name) {
			v4 = append(v4, l.name)
		} else if !l.hasKey {
			fmt.Fprintf(w, "# (lego v4 names the certificate after its first --domains, not %s: set lego_key so that dane-deploy finds the lineage)\n", l.name)
		}
		for _, d := range l.domains {
			if d != l.name {
				v4 = append(v4, d)
			}
		}
		var v4names strings.Builder
		for _, d := range v4 {
			v4names.WriteString(" --domains " + shellWord(d))
		}
		if l.csr != "" {
			v4names.Reset()
			v4names.WriteString(" --csr " + shellWord(l.csr))
		}
		deploy := shellWord(hookCommand("dane-deploy", cfg.Path))
		fmt.Fprintf(w, "lego%s%s%s run --run-hook %s\n", path, v4names.String(), kt, deploy)
		reuse := " --reuse-key"
		if l.csr != "" {
			reuse = ""
		}
		fmt.Fprintf(w, "lego%s%s%s renew%s --renew-hook %s\n\n", path, v4names.String(), kt, reuse, deploy)
	}
	if major == 4 {
		return nil
	}
	snippet := legoYAML(cfg, ls)
	file := c.String("write")
	if file == "" {
		fmt.Fprintf(w, "# .lego.yml (lego v5)\n%s", snippet)
		return nil
	}
	have, err := os.ReadFile(file)
	switch {
	case err == nil && string(have) == snippet:
		fmt.Fprintf(w, "%s: up to date\n", file)
		summary(w, 0, c.Bool("dry-run"))
		return nil
	case err == nil:
		return fail(exitUsage, fmt.Errorf("init lego: %s exists with other content; not overwritten", file),
			"merge the snippet by hand ('danectl init lego' prints it), or remove the file")
	case !errors.Is(err, fs.ErrNotExist):
		return fail(exitUsage, fmt.Errorf("init lego: %w", err), "")
	}
	if c.Bool("dry-run") {
		fmt.Fprintf(w, "%s: would write the .lego.yml snippet\n", file)
		summary(w, 1, true)
		return nil
	}
	if err := atomicfile.Write(file, []byte(snippet), 0o644); err != nil {
		return fail(exitUsage, fmt.Errorf("init lego: %w", err), "")
	}
	fmt.Fprintf(w, "%s: wrote the .lego.yml snippet\n", file)
	summary(w, 1, false)
	return nil
}

func initPostfix(c *cli.Context) error {
	w := c.App.Writer
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	var files, dirs []string
	seenDir := map[string]bool{}
	byAlg := map[string][]string{}
	var notes []string
	missing := false
	for _, name := range cfg.LineageNames() {
		l := cfg.Lineages[name]
		f := filepath.Clean(l.ChainFile)
		if strings.ContainsAny(f, " \t,") {
			return fail(exitUsage, fmt.Errorf("init postfix: lineage %q: chain_file %q contains a space or comma, which Postfix's smtpd_tls_chain_files cannot list", name, l.ChainFile),
				"use a path without spaces or commas")
		}
		files = append(files, f)
		if d := filepath.Dir(f); !seenDir[d] {
			seenDir[d] = true
			dirs = append(dirs, d)
		}
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			missing = true
			notes = append(notes, fmt.Sprintf("# note: %s (lineage %s) does not exist yet: danehook installs it once its record is aged\n#       ('danectl status' says when); run these lines then: 'danectl tick' installs it and reloads Postfix\n#       (a 'postfix reload' before the file exists would leave Postfix without STARTTLS)", f, name))
		} else if alg := chainAlgorithm(f); alg != "" {
			byAlg[alg] = append(byAlg[alg], name)
		}
	}
	for alg, names := range byAlg {
		if len(names) > 1 {
			notes = append(notes, fmt.Sprintf("# warning: lineages %s all hold %s keys: smtpd_tls_chain_files serves one chain per key algorithm;\n#          use one lineage per algorithm here (other host names need tls_server_sni_maps)", strings.Join(names, ", "), alg))
		}
	}
	postconf := "postconf"
	if cfg.Postfix.ConfigDir != "" {
		postconf += " -c " + shellWord(cfg.Postfix.ConfigDir)
	}
	value := strings.Join(files, ", ")
	fmt.Fprintf(w, "# danehook: make Postfix (>= 3.4) serve the chain files of %s\n", cfg.Path)
	if cur, ok := currentChainFiles(c.Context, cliapp.Postfix(cfg)); ok {
		switch {
		case sameList(cur, value):
			fmt.Fprintf(w, "# smtpd_tls_chain_files is already %q: nothing to change\n", strings.Join(cur, ", "))
		case len(cur) == 0:
			fmt.Fprintf(w, "# smtpd_tls_chain_files is not set now\n")
		default:
			fmt.Fprintf(w, "# smtpd_tls_chain_files is now %q\n", strings.Join(cur, ", "))
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	for _, d := range dirs {
		fmt.Fprintf(w, "install -d -m 0700 %s\n", shellWord(d))
	}
	fmt.Fprintf(w, "%s -e %s\n", postconf, shellWord("smtpd_tls_chain_files = "+value))
	if missing {
		tick := "danectl"
		if abs, err := filepath.Abs(cfg.Path); err == nil && abs != config.DefaultPath {
			tick += " --config " + shellWord(abs)
		}
		fmt.Fprintln(w, tick+" tick")
		return nil
	}
	fmt.Fprintf(w, "postfix%s check && postfix%s reload\n", postfixC(cfg), postfixC(cfg))
	return nil
}

func postfixC(cfg *config.Config) string {
	if cfg.Postfix.ConfigDir == "" {
		return ""
	}
	return " -c " + shellWord(cfg.Postfix.ConfigDir)
}

// chainAlgorithm returns "ECDSA", "RSA" or "ED25519" (chain.KeyAlgorithm in
// upper case) for the private key in a served chain file, or "" when it
// cannot be read.
func chainAlgorithm(file string) string {
	b, err := chain.ReadFile(file)
	if err != nil || len(b.PrivateKeys) != 1 {
		return ""
	}
	return strings.ToUpper(chain.KeyAlgorithm(b.PrivateKeys[0]))
}

// currentChainFiles asks Postfix for smtpd_tls_chain_files
// (postfix.Instance.ChainFiles: postconf -x, $parameters expanded); ok is
// false when postconf is not installed or fails.
func currentChainFiles(ctx context.Context, pf *postfix.Instance) ([]string, bool) {
	files, err := pf.ChainFiles(ctx)
	return files, err == nil
}

// sameList compares a Postfix list, as split by postfix.Instance, with the
// comma-separated value danehook prints.
func sameList(cur []string, value string) bool {
	want := strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' })
	return slices.Equal(cur, want)
}
