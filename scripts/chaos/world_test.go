package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/acmelab"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// The lab's names: bindlab serves example.test. (signed) with
// mail.example.test and mx2.example.test A 127.0.0.1; every certificate
// names both, and danehook's hosts list holds mail and sometimes mx2.
const (
	zone     = "example.test."
	mailHost = "mail.example.test"
	mx2Host  = "mx2.example.test"
	// narrowKey is a TSIG key the primary knows but whose grants allow
	// nothing at the TLSA owners: an UPDATE signed with it is REFUSED.
	narrowKey = "narrow."
	// certbotName and the lego certificate name of the lineage.
	certbotName = "mail"
	legoName    = mailHost
)

// allHosts are the MX hosts the judge asks about, whether configured or
// not: a host removed from danehook's configuration still receives mail.
var allHosts = []string{mailHost, mx2Host}

// settings are the parts of danehook.toml the operations edit.
type settings struct {
	hosts    []string
	ttl      int
	ta       bool // usages 3 1 1 + 2 1 1 with ta = "issuer"
	narrow   bool // the provider signs with narrowKey (REFUSED)
	chain    string
	rotateEv string // rotate_every ("20s"), "" when unset
}

// world is one sequence's lab: BIND primary + secondary (signed), the
// caching validating resolver and the judge, Postfix, Pebble, one ACME
// client and danehook's configuration and state.
type world struct {
	t      *testing.T
	client string // "certbot" or "lego"
	tool   string
	bind   *bindlab.Lab
	pf     *postfixlab.Lab
	acme   *acmelab.Lab
	judge  *judge
	dir    string
	config string
	state  string
	set    settings
	// pfChain is the file main.cf's smtpd_tls_chain_files names (it
	// differs from set.chain while a moved chain file is not yet in
	// danehook's configuration).
	pfChain string
	// foreign are the records the runner added at the owners with
	// nsupdate (presentation form), which danehook does not own.
	foreign []string
	log     *lockedBuffer
}

func newWorld(t *testing.T, client string, log *lockedBuffer) *world {
	t.Helper()
	testenv.Require(t, "openssl", "nsupdate", "postconf")
	toolName := acmelab.Certbot
	if client == "lego" {
		toolName = acmelab.LegoV5
	}
	w := &world{t: t, client: client, tool: acmelab.RequireTool(t, toolName), dir: t.TempDir(), log: log}
	w.bind = bindlab.Start(t, bindlab.Options{
		Signed: true,
		TTL:    2,
		Hosts:  []string{"mx2"},
		ExtraKeys: []bindlab.ExtraKey{{
			Name:   narrowKey,
			Grants: []string{`grant "` + narrowKey + `" name nothing-here.example.test. TXT;`},
		}},
	})
	w.judge = startJudge(t, zone, w.servers())
	w.pf = postfixlab.Start(t, postfixlab.Options{})
	// The clients answer HTTP-01 as usual; Pebble skips checking it, which
	// saves seconds per issuance and is not what is under test.
	w.acme = acmelab.Start(t, acmelab.Options{DNSServer: w.bind.Primary, AlwaysValid: true})
	w.pfChain = w.pf.ChainFiles[0]
	w.state = filepath.Join(w.dir, "state")
	w.config = filepath.Join(w.dir, "danehook.toml")
	w.set = settings{hosts: []string{mailHost}, ttl: 2, chain: w.pfChain}
	w.writeConfig()
	return w
}

func (w *world) servers() []string { return []string{w.bind.Primary, w.bind.Secondary} }

// owner is the TLSA owner of host at the lab Postfix's port.
func (w *world) owner(host string) string { return fmt.Sprintf("_%d._tcp.%s.", w.pf.Port, host) }

func (w *world) owners() []string {
	var o []string
	for _, h := range allHosts {
		o = append(o, w.owner(h))
	}
	return o
}

func (w *world) lineage() string {
	if w.client == "certbot" {
		return certbotName
	}
	return legoName
}

// writeConfig writes danehook.toml from w.set.
func (w *world) writeConfig() {
	w.t.Helper()
	key := w.bind.KeyFile
	if w.set.narrow {
		key = w.bind.Keys[narrowKey].File
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n\n[postfix]\nconfig_dir = %q\n\n", w.state, w.pf.ConfigDir)
	// The runner ticks itself; a hook watches the servers for at most 3 s
	// after an UPDATE (a blocked secondary would cost 20 s per hook).
	b.WriteString("[schedule]\npublish_wait = \"3s\"\nvia = \"none\"\n\n")
	fmt.Fprintf(&b, "[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 2\n\n",
		w.bind.Primary, key, w.bind.Port)
	q := make([]string, len(w.set.hosts))
	for i, h := range w.set.hosts {
		q[i] = fmt.Sprintf("%q", h)
	}
	fmt.Fprintf(&b, "[lineage.%q]\nhosts = [%s]\nports = [%d]\nttl = %d\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\nendpoints = [%q]\n",
		w.lineage(), strings.Join(q, ", "), w.pf.Port, w.set.ttl, w.set.chain, w.pf.Addr)
	if w.set.ta {
		b.WriteString("usages = [\"3 1 1\", \"2 1 1\"]\nta = \"issuer\"\n")
	}
	if w.set.rotateEv != "" {
		fmt.Fprintf(&b, "rotate_every = %q\n", w.set.rotateEv)
	}
	if w.client == "certbot" {
		fmt.Fprintf(&b, "certbot_lineage = %q\n", w.certbotLive())
	} else {
		cert, key, _ := w.files()
		fmt.Fprintf(&b, "lego_cert = %q\nlego_key = %q\n", cert, key)
	}
	if err := os.WriteFile(w.config, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) certbotDir() string  { return filepath.Join(w.dir, "certbot") }
func (w *world) certbotLive() string { return filepath.Join(w.certbotDir(), "live", certbotName) }
func (w *world) legoPath() string    { return filepath.Join(w.dir, "lego") }

// files returns the client's current leaf (or bundle), key and issuer files.
func (w *world) files() (cert, key, issuer string) {
	if w.client == "certbot" {
		l := w.certbotLive()
		return filepath.Join(l, "cert.pem"), filepath.Join(l, "privkey.pem"), filepath.Join(l, "chain.pem")
	}
	d := filepath.Join(w.legoPath(), "certificates")
	return filepath.Join(d, legoName+".crt"), filepath.Join(d, legoName+".key"), filepath.Join(d, legoName+".issuer.crt")
}

// hookEnv is what the client gives its deploy hook, to run dane-deploy by
// hand as the client would.
func (w *world) hookEnv() []string {
	cert, key, issuer := w.files()
	if w.client == "certbot" {
		return []string{"RENEWED_LINEAGE=" + w.certbotLive(), "RENEWED_DOMAINS=" + mailHost + " " + mx2Host}
	}
	return []string{"LEGO_HOOK_CERT_NAME=" + legoName, "LEGO_HOOK_CERT_DOMAINS=" + mailHost + "," + mx2Host,
		"LEGO_HOOK_CERT_PATH=" + cert, "LEGO_HOOK_CERT_KEY_PATH=" + key, "LEGO_HOOK_ISSUER_CERT_PATH=" + issuer}
}

// clientArgs is the client's command line: the first issuance or a forced
// renewal, with danehook's three hooks or without any, with the same key
// or a new one.
func (w *world) clientArgs(first, hooks, newKey bool) []string {
	pre, deploy, post := bin("dane-prerenew"), bin("dane-deploy"), bin("dane-reload")
	if w.client == "certbot" {
		// certonly both issues and (with --force-renewal) renews; the
		// hooks are given on every run, so a run without them is exactly
		// that (certbot certonly uses only the hooks on its command line).
		a := append([]string{"certonly"}, w.acme.CertbotArgs(w.certbotDir())...)
		a = append(a, "--key-type", "ecdsa", "--reuse-key", "--cert-name", certbotName, "-d", mailHost, "-d", mx2Host)
		if !first {
			a = append(a, "--force-renewal")
		}
		if newKey {
			a = append(a, "--new-key")
		}
		if hooks {
			a = append(a, "--pre-hook", pre, "--deploy-hook", deploy, "--post-hook", post)
		}
		return a
	}
	a := append(w.acme.LegoV5Args(w.legoPath()), "--domains", mailHost, "--domains", mx2Host, "--key-type", "EC256")
	if !first {
		a = append(a, "--renew-force")
	}
	if !newKey {
		a = append(a, "--reuse-key")
	}
	if hooks {
		a = append(a, "--pre-hook", pre, "--deploy-hook", deploy, "--post-hook", post)
	}
	return a
}

// env is the environment of every command: the lab's ACME trust,
// DANEHOOK_CONFIG and PATH with danehook's binaries first.
func (w *world) env(extra ...string) []string {
	env := append(os.Environ(), w.acme.Env()...)
	env = append(env, "DANEHOOK_CONFIG="+w.config, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// result is a finished command.
type result struct {
	cmd    string
	out    string
	stdout string
	code   int // -1: killed
	took   time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d after %.1f s\n%s", r.cmd, r.code, r.took.Seconds(), r.out)
}

// exec runs name with args in the world's directory and environment; with
// killAfter > 0 it sends SIGKILL to the process after that delay (only to
// this process: what it started, e.g. `postfix reload`, carries on). It
// logs the command and its exit code, and fails t only when the command
// cannot start.
func (w *world) exec(extraEnv []string, killAfter time.Duration, name string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = w.dir
	cmd.Env = w.env(extraEnv...)
	var stdout bytes.Buffer
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, &stdout), out
	start := time.Now()
	r := result{cmd: filepath.Base(name) + " " + shortArgs(args)}
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("%s: %v", r.cmd, err)
	}
	var killed sync.WaitGroup
	stop := make(chan struct{})
	if killAfter > 0 {
		killed.Add(1)
		go func() {
			defer killed.Done()
			select {
			case <-time.After(killAfter):
				_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			case <-stop:
			}
		}()
	}
	err := cmd.Wait()
	close(stop)
	killed.Wait()
	r.out, r.stdout, r.took = out.String(), stdout.String(), time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		w.t.Fatalf("%s: %v", r.cmd, err)
	}
	how := fmt.Sprintf("exit %d", r.code)
	if killAfter > 0 && r.code == -1 {
		how = fmt.Sprintf("KILLED (SIGKILL after %v)", killAfter)
	} else if killAfter > 0 {
		how += fmt.Sprintf(" (ended before the SIGKILL due after %v)", killAfter)
	}
	w.logf("    $ %s -> %s (%.3f s)%s", r.cmd, how, r.took.Seconds(), errLines(r))
	return r
}

// shortArgs abbreviates the lab flags of a client command line.
func shortArgs(args []string) string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--config-dir", "--work-dir", "--logs-dir", "--server", "-m", "--http-01-port", "--http-01-address",
			"--email", "--path", "--http.address", "--log.format", "--pre-hook", "--deploy-hook", "--post-hook":
			if a == "--deploy-hook" {
				out = append(out, "<hooks>")
			}
			i++
		case "-n", "--agree-tos", "--no-eff-email", "--standalone", "--no-random-sleep-on-renew", "--accept-tos",
			"--http", "--no-random-sleep":
		default:
			out = append(out, a)
		}
	}
	return strings.Join(out, " ")
}

// errLines returns, for the log, the error and hint lines of a failed
// command (indented, on their own lines).
func errLines(r result) string {
	if r.code == 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "error") || strings.Contains(l, "hint:") || strings.Contains(l, "level=ERROR") {
			if n++; n > 6 {
				break
			}
			b.WriteString("\n        " + strings.TrimSpace(l))
		}
	}
	if n == 0 {
		ls := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(ls) > 3 {
			ls = ls[len(ls)-3:]
		}
		for _, l := range ls {
			b.WriteString("\n        " + strings.TrimSpace(l))
		}
	}
	return b.String()
}

func (w *world) danectl(args ...string) result { return w.exec(nil, 0, bin("danectl"), args...) }

func (w *world) logf(format string, args ...any) {
	fmt.Fprintf(w.log, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
}

// cert is a certificate: its leaf serial and the DER of leaf and key.
type cert struct {
	Serial string
	SPKI   string // hex SHA-256 of the SubjectPublicKeyInfo (3 1 1 data)
	X509   *x509.Certificate
}

func certOf(c *x509.Certificate) cert {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return cert{Serial: c.SerialNumber.Text(16), SPKI: hex.EncodeToString(sum[:]), X509: c}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// current reads the client's newest leaf from disk (ok false before the
// first issuance).
func (w *world) current() (cert, bool) {
	f, _, _ := w.files()
	b, err := os.ReadFile(f)
	if err != nil {
		return cert{}, false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return cert{}, false
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return cert{}, false
	}
	return certOf(c), true
}

// issuer reads the client's issuer certificate.
func (w *world) issuer() *x509.Certificate {
	_, _, f := w.files()
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
		w.t.Fatal(err)
	}
	return c
}

// served does a STARTTLS handshake with Postfix and returns its chain.
func (w *world) served(ctx context.Context) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	chain, _, err := postfix.Handshake(ctx, w.pf.Addr, mailHost)
	return chain, err
}

// records returns the TLSA RRset at owner at server, presentation forms
// sorted, and the RRset's TTL.
func (w *world) records(ctx context.Context, server, owner string) ([]tlsa.Record, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(owner, dns.TypeTLSA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, 0, fmt.Errorf("TLSA %s at %s: %w", owner, server, err)
	}
	if r.Rcode == dns.RcodeNameError && r.Authoritative {
		return nil, 0, nil
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return nil, 0, fmt.Errorf("TLSA %s at %s: rcode %s aa=%v", owner, server, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	var out []tlsa.Record
	var ttl uint32
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			data, err := hex.DecodeString(t.Certificate)
			if err != nil {
				return nil, 0, err
			}
			ttl = t.Hdr.Ttl
			out = append(out, tlsa.Record{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
		}
	}
	return out, ttl, nil
}

func present(recs []tlsa.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
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
