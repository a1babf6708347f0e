package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/acmelab"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/judgelab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// The lab's names: bindlab serves example.test. with mail.example.test A
// 127.0.0.1, which Pebble resolves for HTTP-01. The TLSA owner is
// world.owner(): _<Postfix's port>._tcp.mail.example.test., because the
// judge (posttls-finger "[host]:port") asks for the owner of the port it
// connects to (RFC 7672 §2.2).
const (
	host = "mail.example.test"
	zone = "example.test."
)

// narrowKey is an extra TSIG key every lab knows whose update-policy grants
// nothing at the TLSA owner: an UPDATE signed with it is REFUSED.
const narrowKey = "narrow."

// client is one ACME client wired to danehook's hooks.
type client struct {
	// Name is the subtest name and the hookenv client name.
	Name string
	// Tool is the acmelab binary name.
	Tool string
	// Lineage is the lineage name the client reports to its deploy hook.
	Lineage string
}

var clients = []client{
	{Name: "certbot", Tool: acmelab.Certbot, Lineage: "mail"},
	{Name: "lego-v5", Tool: acmelab.LegoV5, Lineage: host},
	{Name: "lego-v4", Tool: acmelab.LegoV4, Lineage: host},
	// dehydrated's lineage is its alias, the certificate directory's name.
	{Name: "dehydrated", Tool: acmelab.Dehydrated, Lineage: host},
	// acme.sh by its contract: lego v5 behind a stand-in (acmesh_test.go).
	{Name: "acme.sh", Tool: acmelab.LegoV5, Lineage: host},
}

// world is one complete lab for one client: BIND primary + secondary,
// Postfix, Pebble, the client's files, danehook's configuration and state.
type world struct {
	t    *testing.T
	c    client
	tool string // path of the client binary
	bind *bindlab.Lab
	pf   *postfixlab.Lab
	acme *acmelab.Lab
	// scheduleVia is [schedule] via; "" is "none" (the scenarios tick).
	scheduleVia string
	// port is the lineage's TLSA port (config `ports`): Postfix's port in
	// a world, so that the judge checks the owner danehook publishes; 0
	// leaves danehook's default, 25.
	port int
	// providerExtra is added to the provider's table (lines ending in
	// "\n").
	providerExtra string
	// extraPorts adds that many more ports (extraPortBase, …) to the
	// lineage: TLSA owners of the same host that no Postfix listens on,
	// to make one lineage many owners of one zone.
	extraPorts int
	// resolver and judge are the independent oracle (internal/judgelab):
	// unbound validating and caching over the signed zone, and
	// posttls-finger -l dane-only asking it.
	resolver *judgelab.Resolver
	judge    *judgelab.Judge
	dir      string // working directory: client files, config, state
	config   string // danehook.toml
	state    string // state directory
	chain    string // the served chain file (smtpd_tls_chain_files)
	// story receives the operator-readable narrative (io.Discard except in
	// TestLabWalkthrough).
	story io.Writer
	// legoFiles adds lego_cert and lego_key to the lineage (lego clients),
	// so danehook reads lego's files itself and `rotate commit` can hand
	// lego the staged key.
	legoFiles bool
	// renewCommand is the lineage's renew_command (`rotate commit --now`).
	renewCommand []string
	// rotateEvery is the lineage's rotate_every ("" for none).
	rotateEvery string
	// lineageExtra are more lines of the lineage's table (TOML), e.g.
	// usages, ta and issuer_set.
	lineageExtra string
}

// newWorld starts every lab for c and writes danehook's configuration.
func newWorld(t *testing.T, c client) *world { return newWorldTTL(t, c, 0) }

// newWorldTTL is newWorld with the zone's TTL (0: bindlab's default, 2 s).
func newWorldTTL(t *testing.T, c client, ttl uint32) *world {
	return newWorldOpts(t, c, worldOptions{TTL: ttl})
}

// worldOptions shape a world's lab: the zone's TTL (0: 2 s), and whether
// the secondary lets the key transfer the zone (bindlab.Options).
type worldOptions struct {
	TTL                uint32
	SecondaryTransfers bool
}

// extraPortBase is the first of a world's extraPorts.
const extraPortBase = 20000

// newWorldOpts is newWorld with opts.
func newWorldOpts(t *testing.T, c client, opts worldOptions) *world {
	t.Helper()
	testenv.Require(t, "openssl")
	tool := acmelab.RequireTool(t, c.Tool)
	w := &world{t: t, c: c, tool: tool, dir: t.TempDir(), story: io.Discard}
	ttl := opts.TTL
	w.bind = bindlab.Start(t, bindlab.Options{Signed: true, TTL: ttl, SecondaryTransfers: opts.SecondaryTransfers, ExtraKeys: []bindlab.ExtraKey{{
		Name: narrowKey,
		// Enough to make the key valid for the zone, never for the owner.
		Grants: []string{`grant "` + narrowKey + `" name nothing-here.example.test. TXT;`},
	}}})
	w.pf = postfixlab.Start(t, postfixlab.Options{})
	w.port = w.pf.Port
	w.resolver = judgelab.StartResolver(t, judgelab.ResolverOptions{
		Zone:        zone,
		Servers:     w.servers(),
		TrustAnchor: judgelab.TrustAnchorFrom(t, w.bind.Primary, zone),
	})
	w.judge = judgelab.NewJudge(t, w.resolver)
	w.acme = acmelab.Start(t, acmelab.Options{DNSServer: w.bind.Primary})
	w.chain = w.pf.ChainFiles[0]
	w.state = filepath.Join(w.dir, "state")
	w.config = filepath.Join(w.dir, "danehook.toml")
	w.writeConfig(w.bind.KeyFile)
	switch c.Name {
	case "dehydrated":
		w.setupDehydrated()
	case "acme.sh":
		w.setupAcmeSh()
	}
	return w
}

// The dehydrated world: its base directory, its main configuration (HOOK =
// the operator's hook with danehook chained in), and the web server that
// publishes its HTTP-01 tokens.
func (w *world) dehydratedDir() string    { return filepath.Join(w.dir, "dehydrated") }
func (w *world) dehydratedConfig() string { return filepath.Join(w.dehydratedDir(), "config") }
func (w *world) dehydratedCert() string {
	return filepath.Join(w.dehydratedDir(), "certs", host)
}

// dehydratedHookLog is where the operator's hook (chainedHook) notes each
// handler it was called for.
func (w *world) dehydratedHookLog() string { return filepath.Join(w.dir, "operator-hook.log") }

// chainedHook is an operator's existing dehydrated hook, in the shape of
// dehydrated's docs/examples/hook.sh (functions per handler, then a
// dispatch that ignores unknown handlers), with danehook chained in as the
// README says: its last line hands every call to danehook's hook.
const chainedHook = `#!/usr/bin/env bash
# The operator's own hook: it logs, danehook does the DANE part.
deploy_cert() { echo "deploy_cert $1" >> %[1]q; }
startup_hook() { echo "startup_hook" >> %[1]q; }
exit_hook() { echo "exit_hook ${1:-}" >> %[1]q; }
HANDLER="$1"; shift
if [[ "${HANDLER}" =~ ^(deploy_cert|startup_hook|exit_hook)$ ]]; then
  "$HANDLER" "$@"
fi
exec %[2]q "$HANDLER" "$@"    # danehook (README, "dehydrated")
`

func (w *world) setupDehydrated() {
	w.t.Helper()
	root := hooksDir
	if root == "" {
		root = filepath.Join(repoRoot, "hooks")
	}
	hook := filepath.Join(w.dir, "operator-hook.sh")
	if err := os.WriteFile(hook, []byte(fmt.Sprintf(chainedHook, w.dehydratedHookLog(), filepath.Join(root, "dehydrated", "hook"))), 0o755); err != nil {
		w.t.Fatal(err)
	}
	w.acme.DehydratedConfig(w.t, w.dehydratedDir(), hook)
	w.acme.ServeWellKnown(w.t, filepath.Join(w.dehydratedDir(), "wellknown"))
}

// writeConfig writes danehook.toml with the RFC 2136 provider signing with
// keyFile.
func (w *world) writeConfig(keyFile string) {
	w.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n\n[postfix]\nconfig_dir = %q\n\n", w.state, w.pf.ConfigDir)
	via := w.scheduleVia
	if via == "" {
		via = "none" // the scenarios tick themselves
	}
	fmt.Fprintf(&b, "[schedule]\npublish_wait = \"5s\"\nvia = %q\n\n", via)
	fmt.Fprintf(&b, "[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 2\n%s\n",
		w.bind.Primary, keyFile, w.bind.Port, w.providerExtra)
	fmt.Fprintf(&b, "[lineage.%q]\nhosts = [%q]\nttl = %d\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\nendpoints = [%q]\n",
		w.c.Lineage, host, w.bind.TTL, w.chain, w.pf.Addr)
	if w.port != 0 {
		ports := []string{strconv.Itoa(w.port)}
		for i := range w.extraPorts {
			ports = append(ports, strconv.Itoa(extraPortBase+i))
		}
		fmt.Fprintf(&b, "ports = [%s]\n", strings.Join(ports, ", "))
	}
	if w.c.Name == "certbot" {
		fmt.Fprintf(&b, "certbot_lineage = %q\n", w.certbotLive())
	}
	if w.c.Name == "dehydrated" {
		fmt.Fprintf(&b, "dehydrated_cert = %q\ndehydrated_config = %q\n", w.dehydratedCert(), w.dehydratedConfig())
	}
	if w.c.Name == "acme.sh" {
		fmt.Fprintf(&b, "acmesh_dir = %q\n", w.acmeShDir())
	}
	if w.legoFiles {
		cert, key, _ := w.files()
		fmt.Fprintf(&b, "lego_cert = %q\nlego_key = %q\n", cert, key)
	}
	if w.rotateEvery != "" {
		fmt.Fprintf(&b, "rotate_every = %q\n", w.rotateEvery)
	}
	b.WriteString(w.lineageExtra)
	if len(w.renewCommand) > 0 {
		q := make([]string, len(w.renewCommand))
		for i, a := range w.renewCommand {
			q[i] = fmt.Sprintf("%q", a)
		}
		fmt.Fprintf(&b, "renew_command = [%s]\n", strings.Join(q, ", "))
	}
	if err := os.WriteFile(w.config, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) certbotDir() string  { return filepath.Join(w.dir, "certbot") }
func (w *world) certbotLive() string { return filepath.Join(w.certbotDir(), "live", "mail") }
func (w *world) legoPath() string    { return filepath.Join(w.dir, "lego") }

// files returns the client's current leaf (or bundle), key and issuer files.
func (w *world) files() (cert, key, issuer string) {
	if w.c.Name == "certbot" {
		l := w.certbotLive()
		return filepath.Join(l, "cert.pem"), filepath.Join(l, "privkey.pem"), filepath.Join(l, "chain.pem")
	}
	if w.c.Name == "dehydrated" {
		d := w.dehydratedCert()
		return filepath.Join(d, "cert.pem"), filepath.Join(d, "privkey.pem"), filepath.Join(d, "chain.pem")
	}
	if w.c.Name == "acme.sh" {
		d := w.acmeShDir()
		return filepath.Join(d, host+".cer"), filepath.Join(d, host+".key"), filepath.Join(d, "ca.cer")
	}
	d := filepath.Join(w.legoPath(), "certificates")
	return filepath.Join(d, host+".crt"), filepath.Join(d, host+".key"), filepath.Join(d, host+".issuer.crt")
}

// hookEnv returns the variables the client gives its deploy hook, to run
// dane-deploy by hand as the client would.
func (w *world) hookEnv() []string {
	cert, key, issuer := w.files()
	switch w.c.Name {
	case "certbot":
		return []string{"RENEWED_LINEAGE=" + w.certbotLive(), "RENEWED_DOMAINS=" + host}
	case "acme.sh":
		return []string{"Le_Domain=" + host, "CERT_PATH=" + cert, "CERT_KEY_PATH=" + key, "CA_CERT_PATH=" + issuer,
			"CERT_FULLCHAIN_PATH=" + filepath.Join(w.acmeShDir(), "fullchain.cer")}
	case "lego-v5":
		return []string{"LEGO_HOOK_CERT_NAME=" + host, "LEGO_HOOK_CERT_DOMAINS=" + host,
			"LEGO_HOOK_CERT_PATH=" + cert, "LEGO_HOOK_CERT_KEY_PATH=" + key, "LEGO_HOOK_ISSUER_CERT_PATH=" + issuer}
	default:
		return []string{"LEGO_CERT_DOMAIN=" + host, "LEGO_CERT_PATH=" + cert, "LEGO_CERT_KEY_PATH=" + key,
			"LEGO_ISSUER_CERT_PATH=" + issuer}
	}
}

// issueArgs is the first issuance with danehook's hooks wired in.
func (w *world) issueArgs() []string {
	switch w.c.Name {
	case "certbot":
		pre, deploy, post := bin("dane-prerenew"), bin("dane-deploy"), bin("dane-reload")
		if hooksDir != "" {
			// The wrappers `danectl init certbot` linked (wireHooks): certbot
			// stores them and, as they are its directory hooks, runs each
			// once at renewals.
			pre, deploy, post = w.certbotHook("pre"), w.certbotHook("deploy"), w.certbotHook("post")
		}
		return append(append([]string{"certonly"}, w.acme.CertbotArgs(w.certbotDir())...),
			"--key-type", "ecdsa", "--reuse-key", "--cert-name", "mail", "-d", host,
			"--pre-hook", pre, "--deploy-hook", deploy, "--post-hook", post)
	case "lego-v5":
		return append(w.acme.LegoV5Args(w.legoPath()), "--domains", host, "--key-type", "EC256", "--reuse-key",
			"--pre-hook", bin("dane-prerenew"), "--deploy-hook", bin("dane-deploy"), "--post-hook", bin("dane-reload"))
	case "acme.sh":
		// The stand-in adds --reuse-key unless Le_ForceNewDomainKey is "1".
		return append(w.acme.LegoV5Args(w.legoPath()), "--domains", host, "--key-type", "EC256")
	case "dehydrated":
		// HOOK (in the configuration) is the operator's hook with danehook
		// chained in; its startup_hook pins the key.
		return []string{"--config", w.dehydratedConfig(), "--cron", "--accept-terms", "--domain", host}
	default:
		return append(w.acme.LegoV4Args(w.legoPath(), "run", "--domains", host, "--key-type", "ec256"),
			"--run-hook", bin("dane-deploy"))
	}
}

// certbotHook is the directory hook of phase ("pre", "deploy", "post")
// that `danectl init certbot` links in the world's certbot directory.
func (w *world) certbotHook(phase string) string {
	return filepath.Join(w.certbotDir(), "renewal-hooks", phase, "danehook")
}

// wireHooks, for a certbot world with DANEHOOK_HOOKS_DIR set, links the
// hook wrappers into the certbot directory as an operator does:
// `danectl init certbot --certbot-dir … --hooks-dir … --config …`. The
// wrappers run dane-* from PATH (see env). Otherwise it does nothing: the
// hooks are the binaries themselves.
func (w *world) wireHooks() {
	w.t.Helper()
	if hooksDir == "" || w.c.Name != "certbot" {
		return
	}
	if err := os.MkdirAll(w.certbotDir(), 0o755); err != nil {
		w.t.Fatal(err)
	}
	r := w.danectl("init", "certbot", "--certbot-dir", w.certbotDir(), "--hooks-dir", hooksDir, "--config", w.config)
	if r.code != 0 {
		w.t.Fatalf("%v", r)
	}
	for _, phase := range []string{"pre", "deploy", "post"} {
		want := filepath.Join(hooksDir, "certbot", phase, "danehook")
		if got, err := os.Readlink(w.certbotHook(phase)); err != nil || got != want {
			w.t.Fatalf("danectl init certbot: %s links to %q (%v); want %s\n%v", w.certbotHook(phase), got, err, want, r)
		}
	}
}

// renewArgs is a forced renewal, with the same key or a new one.
func (w *world) renewArgs(newKey bool) []string {
	switch w.c.Name {
	case "certbot":
		a := append(append([]string{"renew"}, w.acme.CertbotArgs(w.certbotDir())...), "--force-renewal", "--cert-name", "mail")
		if newKey {
			a = append(a, "--new-key")
		}
		return a
	case "acme.sh":
		if newKey {
			// acme.sh --renew --force --always-force-new-domain-key
			w.setForceNewKey()
		}
		return append(w.acme.LegoV5Args(w.legoPath()), "--domains", host, "--key-type", "EC256", "--renew-force")
	case "dehydrated":
		if newKey {
			// dehydrated has no new-key flag once PRIVATE_KEY_RENEW="no"
			// (which danehook's startup_hook keeps): it makes a new key when
			// privkey.pem is gone — a lost key file, as an operator meets it.
			if err := os.Remove(filepath.Join(w.dehydratedCert(), "privkey.pem")); err != nil {
				w.t.Fatal(err)
			}
		}
		return []string{"--config", w.dehydratedConfig(), "--cron", "--force", "--domain", host}
	case "lego-v5":
		a := append(w.acme.LegoV5Args(w.legoPath()), "--domains", host, "--key-type", "EC256", "--renew-force",
			"--pre-hook", bin("dane-prerenew"), "--deploy-hook", bin("dane-deploy"), "--post-hook", bin("dane-reload"))
		if !newKey {
			a = append(a, "--reuse-key")
		}
		return a
	default:
		a := append(w.acme.LegoV4Args(w.legoPath(), "renew", "--domains", host, "--key-type", "ec256"),
			"--renew-hook", bin("dane-deploy"), "--days", "999", "--ari-disable")
		if !newKey {
			a = append(a, "--reuse-key")
		}
		return a
	}
}

// env is the environment of every command: the lab's ACME trust,
// DANEHOOK_CONFIG (the hooks get it from the client, which passes its
// environment on) and PATH with the danehook binaries first (the certbot
// hook wrappers run dane-* from PATH).
func (w *world) env(extra ...string) []string {
	env := os.Environ()
	if w.acme != nil {
		env = append(env, w.acme.Env()...)
	}
	env = append(env, "DANEHOOK_CONFIG="+w.config, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// result is a finished command.
type result struct {
	cmd    string
	out    string // stdout and stderr together
	stdout string // stdout alone (for --json)
	code   int
	took   time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d after %.1f s\n%s", r.cmd, r.code, r.took.Seconds(), r.out)
}

// exec runs name with args in the world's directory with env (nil: w.env())
// and returns how it ended; it fails t only when the command cannot start.
func (w *world) exec(env []string, name string, args ...string) result {
	w.t.Helper()
	if env == nil {
		env = w.env()
	}
	r, err := runIn(w.t.Context(), w.dir, env, name, args...)
	if err != nil {
		w.t.Fatalf("%s: %v", r.cmd, err)
	}
	return r
}

// runIn runs name with args in dir with env, bounded by 2 minutes, and
// returns how it ended, and the error when it could not start (or wait).
// It never calls t.Fatal, so goroutines may use it.
func runIn(ctx context.Context, dir string, env []string, name string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	// Two pipes copied by two goroutines: out is shared, so it is locked.
	var stdout bytes.Buffer
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, &stdout), out
	start := time.Now()
	err := cmd.Run()
	r := result{cmd: filepath.Base(name) + " " + strings.Join(args, " "), out: out.String(), stdout: stdout.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return r, err
	}
	return r, nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// client runs the ACME client and fails t unless it exits 0.
func (w *world) client(args ...string) result {
	w.t.Helper()
	r := w.exec(nil, w.tool, args...)
	if r.code != 0 {
		w.t.Fatalf("%v", r)
	}
	w.t.Logf("%s %s took %.1f s", w.c.Name, verb(args), r.took.Seconds())
	return r
}

// danectl runs danectl with args.
func (w *world) danectl(args ...string) result {
	w.t.Helper()
	return w.exec(nil, bin("danectl"), args...)
}

// cert is a certificate the client holds: its leaf serial and 3 1 1 record.
type cert struct {
	Serial string // hex
	Digest string // hex SHA-256 of the SubjectPublicKeyInfo (tlsa.SPKIDigest)
	Record tlsa.Record
}

func certOf(c *x509.Certificate) cert {
	sum, _ := tlsa.SPKIDigest(c)
	return cert{
		Serial: c.SerialNumber.Text(16),
		Digest: hex.EncodeToString(sum[:]),
		Record: tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: sum[:]},
	}
}

// current reads the client's current leaf.
func (w *world) current() cert {
	w.t.Helper()
	f, _, _ := w.files()
	b, err := os.ReadFile(f)
	if err != nil {
		w.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		w.t.Fatalf("%s: no PEM block", f)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		w.t.Fatalf("%s: %v", f, err)
	}
	return certOf(c)
}

// served does a STARTTLS handshake with Postfix and returns its leaf.
func (w *world) served() cert {
	w.t.Helper()
	c, err := servedAt(w.t.Context(), w.pf.Addr)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func servedAt(ctx context.Context, addr string) (cert, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	chain, _, err := postfix.Handshake(ctx, addr, host)
	if err != nil {
		return cert{}, err
	}
	return certOf(chain[0]), nil
}

// owner is the world's TLSA owner, _<port>._tcp.mail.example.test.
func (w *world) owner() string {
	port := w.port
	if port == 0 {
		port = 25
	}
	return fmt.Sprintf("_%d._tcp.%s.", port, host)
}

// tlsaAt asks server ("ip:port") directly, without recursion, for the TLSA
// RRset at owner.
func tlsaAt(ctx context.Context, server, owner string) ([]tlsa.Record, error) {
	m := new(dns.Msg)
	m.SetQuestion(owner, dns.TypeTLSA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("TLSA %s at %s: %w", owner, server, err)
	}
	if r.Rcode == dns.RcodeNameError && r.Authoritative {
		return nil, nil // no records: the owner does not exist (yet)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return nil, fmt.Errorf("TLSA %s at %s: rcode %s aa=%v", owner, server, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	var out []tlsa.Record
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			data, err := hex.DecodeString(t.Certificate)
			if err != nil {
				return nil, fmt.Errorf("TLSA at %s: %w", server, err)
			}
			out = append(out, tlsa.Record{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
		}
	}
	return out, nil
}

// servers returns the primary and the secondary.
func (w *world) servers() []string { return []string{w.bind.Primary, w.bind.Secondary} }

// records returns the TLSA RRset at one server as sorted presentation strings.
func (w *world) records(server string) []string {
	w.t.Helper()
	recs, err := tlsaAt(w.t.Context(), server, w.owner())
	if err != nil {
		w.t.Fatal(err)
	}
	return present(recs)
}

func present(recs []tlsa.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

// waitRecords waits (up to 10 s: NOTIFY and IXFR take milliseconds) until
// both servers serve exactly want at the owner, and fails t otherwise.
func (w *world) waitRecords(want ...tlsa.Record) {
	w.t.Helper()
	if err := w.recordsWithin(10*time.Second, want...); err != nil {
		w.t.Fatal(err)
	}
}

// recordsWithin polls both name servers until each serves exactly want at
// the owner; it returns an error naming what each served when timeout
// passes first.
func (w *world) recordsWithin(timeout time.Duration, want ...tlsa.Record) error {
	exp := present(want)
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		var got []string
		for _, s := range w.servers() {
			recs := w.records(s)
			got = append(got, fmt.Sprintf("%s: %q", s, recs))
			ok = ok && slices.Equal(recs, exp)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TLSA %s: got %s; want %q at both servers", w.owner(), strings.Join(got, ", "), exp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitServed polls STARTTLS (up to 10 s: postfix reload is asynchronous)
// until Postfix presents want's leaf.
func (w *world) waitServed(want cert) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := w.served()
		if got.Serial == want.Serial && got.Digest == want.Digest {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("Postfix serves leaf serial %s key %s; want serial %s key %s", got.Serial, short(got.Digest), want.Serial, short(want.Digest))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyLive checks the live chain against the RRset of each server with
// pkg/postfix (as a DANE sender matches) and with openssl s_client's own
// DANE code.
func (w *world) verifyLive() {
	w.t.Helper()
	for _, s := range w.servers() {
		recs, err := tlsaAt(w.t.Context(), s, w.owner())
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := postfix.Verify(w.t.Context(), w.pf.Addr, host, recs); err != nil {
			w.t.Fatalf("live chain against the RRset at %s: %v", s, err)
		}
	}
	w.opensslDANE(w.served().Record, true)
}

// opensslDANE runs openssl s_client with the record as the only TLSA
// record and checks that it verifies (ok) or fails.
func (w *world) opensslDANE(rec tlsa.Record, ok bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-starttls", "smtp", "-connect", w.pf.Addr,
		"-dane_tlsa_domain", host, "-dane_tlsa_rrdata", rec.String(), "-dane_ee_no_namechecks",
		"-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, err := cmd.CombinedOutput()
	if got := err == nil; got != ok {
		w.t.Fatalf("openssl s_client -dane_tlsa_rrdata %q: success %v, want %v: %v\n%s", rec.String(), got, ok, err, out)
	}
}

// serial returns the primary's SOA serial.
func (w *world) serial() uint32 { return w.bind.Serial(w.t, w.bind.Primary, zone) }

// lineageState reads danehook's state of the world's lineage.
func (w *world) lineageState() deploy.LineageState {
	w.t.Helper()
	var st deploy.LineageState
	readJSON(w.t, filepath.Join(w.state, w.c.Lineage+".json"), &st)
	return st
}

// dnsState reads danehook's DNS state (owned records, first-seen times).
func (w *world) dnsState() deploy.DNSState {
	w.t.Helper()
	var st deploy.DNSState
	readJSON(w.t, filepath.Join(w.state, "dns.json"), &st)
	return st
}

// tickUntilServed runs `danectl tick` every second, as a fast timer would,
// until Postfix serves want's key, and returns how many ticks that took; it
// fails t on a tick error or after timeout.
func (w *world) tickUntilServed(want cert, timeout time.Duration) (ticks int) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := w.danectl("tick")
		ticks++
		if r.code != 0 {
			w.t.Fatalf("%v", r)
		}
		if got := w.served(); got.Digest == want.Digest {
			return ticks
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("after %d ticks in %v Postfix still does not serve key %s; last tick:\n%v", ticks, timeout, short(want.Digest), r)
		}
		time.Sleep(time.Second)
	}
}

func short(spki string) string {
	if len(spki) > 16 {
		return spki[:16] + "…"
	}
	return spki
}

func has(recs []string, r tlsa.Record) bool { return slices.Contains(recs, r.String()) }

// readJSON decodes the JSON file at path into v, failing t.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// verb returns the client's subcommand in args.
func verb(args []string) string {
	for _, a := range args {
		switch a {
		case "certonly", "renew", "run", "--cron":
			return a
		}
	}
	return ""
}
