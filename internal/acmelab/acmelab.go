// Package acmelab starts a real Pebble ACME server (RFC 8555) on loopback for
// tests and the lab, and builds the command lines (and, for dehydrated, the
// configuration and the HTTP-01 web server) that make certbot, lego v5, lego
// v4 and dehydrated talk to it without rediscovering the lab's gotchas.
//
// Every Start is independent: its own directory under t.TempDir(), its own
// HTTPS CA and server certificate (made with crypto/x509; the certificate
// bundled with Pebble expires in October 2027), its own ports on 127.0.0.1 and
// a Pebble child process stopped by t.Cleanup. When the test failed, the last
// lines of Pebble's log are printed.
//
// Pebble is configured with exactly one profile ("default"): with several it
// picks one at random for orders that name none, and certbot 2.1 cannot name
// one. The VA never sleeps (PEBBLE_VA_NOSLEEP=1), nonces are never rejected
// at random (PEBBLE_WFE_NONCEREJECT=0), and Pebble always resolves names
// through Options.DNSServer — never through the system resolver, which must
// not be queried from this machine.
//
// HTTP-01 validation: Pebble looks up the A (and AAAA) record of the
// identifier at Options.DNSServer, over TCP, and fetches
// http://<that address>:<Lab.HTTPPort>/.well-known/acme-challenge/<token>. So
// with the lab BIND (bindlab) mail.example.test must resolve to 127.0.0.1,
// and the client must listen on 127.0.0.1:<Lab.HTTPPort> (CertbotArgs,
// LegoV5Args and LegoV4Args do that). Without BIND, LoopbackDNS answers
// 127.0.0.1 for every name. Options.AlwaysValid skips validation entirely.
//
// Binaries are found in $DANEHOOK_TOOLS (default
// /usr/local/lib/danehook-lab/bin, where scripts/install-acme.sh puts them)
// before PATH; a missing one is reported with testenv.Missing (a skip, or a
// failure under CI=true).
package acmelab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
)

// Names of the binaries the lab uses, as installed by scripts/install-acme.sh
// (certbot is the Debian package).
const (
	Pebble  = "pebble"
	LegoV5  = "lego"  // github.com/go-acme/lego/v5 v5.6.0, built with -tags lego_dnslight
	LegoV4  = "lego4" // github.com/go-acme/lego/v4 v4.35.2
	Certbot = "certbot"
	// Dehydrated is the Debian package's /usr/bin/dehydrated (0.7.0).
	Dehydrated = "dehydrated"
)

// DefaultToolsDir is where scripts/install-acme.sh installs pebble, lego and
// lego4 unless $DANEHOOK_TOOLS names another directory.
const DefaultToolsDir = "/usr/local/lib/danehook-lab/bin"

// Email is the ACME account contact the client helpers register.
const Email = "admin@example.test"

// DefaultValidity is the lifetime of certificates Pebble issues unless
// Options.Validity says otherwise: 90 days, like Let's Encrypt's classic
// profile.
const DefaultValidity = 90 * 24 * time.Hour

// Options configure a Lab.
type Options struct {
	// DNSServer is the "IP:PORT" Pebble resolves identifiers at (its
	// -dnsserver flag), usually the lab BIND's primary (bindlab.Lab.Primary)
	// or LoopbackDNS(t). Required, and it must be a loopback address: Pebble
	// must never fall back to the system resolver.
	DNSServer string
	// AlwaysValid makes Pebble accept every challenge without checking it
	// (PEBBLE_VA_ALWAYS_VALID=1). The clients still answer the challenge.
	AlwaysValid bool
	// Validity is the lifetime of issued certificates, rounded down to whole
	// seconds; zero means DefaultValidity.
	Validity time.Duration
}

// Lab is a running Pebble. All fields are read-only.
type Lab struct {
	Dir           string // the lab's directory: config, certificates, log
	DirectoryURL  string // "https://127.0.0.1:PORT/dir", the ACME directory
	ManagementURL string // "https://127.0.0.1:PORT", Pebble's management API
	// CACertFile is the PEM file of the CA that signed Pebble's HTTPS server
	// certificate: give it to clients as REQUESTS_CA_BUNDLE (certbot) and
	// LEGO_CA_CERTIFICATES (lego); see Env. It is not the CA that issues ACME
	// certificates (see Roots).
	CACertFile string
	// HTTPPort is the TCP port on the identifier's address that Pebble
	// fetches HTTP-01 challenges from (RFC 8555 §8.3 uses 80).
	HTTPPort int
	// TLSPort is the TCP port Pebble connects to for TLS-ALPN-01 (RFC 8737
	// uses 443).
	TLSPort int
	// LogFile holds Pebble's stdout and stderr.
	LogFile string

	opts   Options
	client *http.Client
	proc   *process
}

// Start writes a Pebble configuration under t.TempDir(), starts Pebble on
// free ports of 127.0.0.1, waits until the ACME directory and the management
// API answer over HTTPS (normally well under a second; at most 15 s), and
// registers a cleanup that stops it. It fails t when Options.DNSServer is not
// a loopback "IP:PORT", and reports pebble missing with testenv.Missing.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	if err := checkDNSServer(opts.DNSServer); err != nil {
		t.Fatalf("acmelab: %v", err)
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.Validity < time.Second {
		t.Fatalf("acmelab: option Validity %v is shorter than a second", opts.Validity)
	}
	pebble := RequireTool(t, Pebble)

	l := &Lab{Dir: t.TempDir(), opts: opts}
	l.LogFile = filepath.Join(l.Dir, "pebble.log")
	l.CACertFile = filepath.Join(l.Dir, "https-ca.pem")
	certFile := filepath.Join(l.Dir, "https-cert.pem")
	keyFile := filepath.Join(l.Dir, "https-key.pem")
	pool, err := writeHTTPSCerts(l.CACertFile, certFile, keyFile)
	if err != nil {
		t.Fatalf("acmelab: %v", err)
	}
	l.client = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil, // loopback only, whatever HTTPS_PROXY says
			TLSClientConfig: &tls.Config{RootCAs: pool},
		},
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("acmelab: last lines of %s:\n%s", l.LogFile, testenv.Tail(l.LogFile, 60))
		}
		l.stop()
	})

	// A port picked free can be taken by a parallel test before Pebble (or
	// the ACME client) binds it: Pebble then exits, and we try again.
	var lastErr error
	for range 5 {
		ports, err := freePorts(4)
		if err != nil {
			t.Fatalf("acmelab: %v", err)
		}
		acme, mgmt := ports[0], ports[1]
		l.HTTPPort, l.TLSPort = ports[2], ports[3]
		l.DirectoryURL = "https://" + hostPort(acme) + "/dir"
		l.ManagementURL = "https://" + hostPort(mgmt)
		cfg := filepath.Join(l.Dir, "pebble-config.json")
		if err := writeConfig(cfg, acme, mgmt, l.HTTPPort, l.TLSPort, certFile, keyFile, opts.Validity); err != nil {
			t.Fatalf("acmelab: %v", err)
		}
		if lastErr = l.start(pebble, cfg); lastErr == nil {
			return l
		}
		l.stop()
	}
	t.Fatalf("acmelab: start pebble: %v", lastErr)
	return nil
}

// checkDNSServer accepts only a loopback "IP:PORT".
func checkDNSServer(s string) error {
	if s == "" {
		return errors.New("option DNSServer is required: without -dnsserver Pebble would query the system resolver")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("option DNSServer %q: %w", s, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("option DNSServer %q: not a loopback IP address", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("option DNSServer %q: bad port", s)
	}
	return nil
}

// pebbleConfig mirrors the part of Pebble v2.10's JSON configuration the lab
// sets (cmd/pebble/main.go, type config).
type pebbleConfig struct {
	Pebble struct {
		ListenAddress           string                     `json:"listenAddress"`
		ManagementListenAddress string                     `json:"managementListenAddress"`
		Certificate             string                     `json:"certificate"`
		PrivateKey              string                     `json:"privateKey"`
		HTTPPort                int                        `json:"httpPort"`
		TLSPort                 int                        `json:"tlsPort"`
		OCSPResponderURL        string                     `json:"ocspResponderURL"`
		KeyAlgorithm            string                     `json:"keyAlgorithm"`
		RetryAfter              struct{ Authz, Order int } `json:"retryAfter"`
		Profiles                map[string]pebbleProfile   `json:"profiles"`
	} `json:"pebble"`
}

type pebbleProfile struct {
	Description    string `json:"description"`
	ValidityPeriod uint64 `json:"validityPeriod"` // seconds
}

func writeConfig(path string, acme, mgmt, httpPort, tlsPort int, cert, key string, validity time.Duration) error {
	var c pebbleConfig
	p := &c.Pebble
	p.ListenAddress = hostPort(acme)
	p.ManagementListenAddress = hostPort(mgmt)
	p.Certificate, p.PrivateKey = cert, key
	p.HTTPPort, p.TLSPort = httpPort, tlsPort
	p.KeyAlgorithm = "ecdsa" // issuing CA keys; faster to make than RSA
	// No Retry-After headers: clients would wait for them.
	p.RetryAfter.Authz, p.RetryAfter.Order = 0, 0
	// Exactly one profile: with several, Pebble picks one at random.
	p.Profiles = map[string]pebbleProfile{
		"default": {Description: "danehook lab", ValidityPeriod: uint64(validity / time.Second)},
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pebble config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write pebble config: %w", err)
	}
	return nil
}

// process is the running Pebble.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // exit status, valid after done
}

// start runs pebble with cfg and waits until it is ready.
func (l *Lab) start(pebble, cfg string) error {
	logf, err := os.OpenFile(l.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open pebble log: %w", err)
	}
	cmd := exec.Command(pebble, "-config", cfg, "-dnsserver", l.opts.DNSServer)
	cmd.Dir = l.Dir
	cmd.Env = pebbleEnv(os.Environ(), l.opts.AlwaysValid)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", pebble, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	l.proc = p

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("pebble exited: %v; log:\n%s", p.err, testenv.Tail(l.LogFile, 10))
		case <-ctx.Done():
			return fmt.Errorf("pebble not ready at %s: %v", l.DirectoryURL, last)
		case <-time.After(20 * time.Millisecond):
		}
		if last = l.ready(ctx); last == nil {
			return nil
		}
	}
}

// pebbleEnv returns env without inherited PEBBLE_* settings, plus the lab's.
func pebbleEnv(env []string, alwaysValid bool) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			out = append(out, kv)
		}
	}
	out = append(out, "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	if alwaysValid {
		out = append(out, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	return out
}

// ready checks the directory (it must name newNonce) and the management API.
// l.client trusts only this lab's CA, so a server of another lab that grabbed
// the port in the meantime fails the TLS handshake instead of passing.
func (l *Lab) ready(ctx context.Context) error {
	b, err := l.get(ctx, l.DirectoryURL)
	if err != nil {
		return err
	}
	var dir struct {
		NewNonce string `json:"newNonce"`
	}
	if err := json.Unmarshal(b, &dir); err != nil || dir.NewNonce == "" {
		return fmt.Errorf("GET %s: not an ACME directory", l.DirectoryURL)
	}
	_, err = l.get(ctx, l.ManagementURL+"/roots/0")
	return err
}

// get fetches u over HTTPS trusting only the lab's CA; any status but 200 is
// an error.
func (l *Lab) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	return b, nil
}

// stop sends SIGTERM, waits up to 5 s, then kills.
func (l *Lab) stop() {
	p := l.proc
	l.proc = nil
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(terminate)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Root returns the PEM of the root CA certificate that Pebble's issuing
// chain ends at (management API /roots/0). Pebble makes a new root each
// time it starts. It fails t when the API does not answer.
func (l *Lab) Root(t testing.TB) []byte {
	t.Helper()
	return l.mgmtPEM(t, "/roots/0")
}

// Intermediate returns the PEM of the intermediate CA certificate that signs
// the certificates Pebble issues (management API /intermediates/0); it is
// what certbot's chain.pem and lego's <domain>.issuer.crt hold.
func (l *Lab) Intermediate(t testing.TB) []byte {
	t.Helper()
	return l.mgmtPEM(t, "/intermediates/0")
}

// Roots returns the issuing root PEM followed by the intermediate PEM: the
// trust anchor candidates for a `2 x x` TLSA record (RFC 7671 §5.2). This is
// not the HTTPS CA of CACertFile.
func (l *Lab) Roots(t testing.TB) []byte {
	t.Helper()
	return append(l.Root(t), l.Intermediate(t)...)
}

func (l *Lab) mgmtPEM(t testing.TB, path string) []byte {
	t.Helper()
	b, err := l.get(t.Context(), l.ManagementURL+path)
	if err != nil {
		t.Fatalf("acmelab: %v", err)
	}
	return b
}

// Env returns the environment variables an ACME client needs to trust the
// lab's HTTPS certificate, as "KEY=value": REQUESTS_CA_BUNDLE (certbot, via
// python-requests) and LEGO_CA_CERTIFICATES (lego v4 and v5), both naming
// CACertFile, and NO_PROXY/no_proxy for loopback so no configured proxy is
// ever used. Append it to os.Environ() for exec.Cmd.Env.
func (l *Lab) Env() []string {
	const loop = "127.0.0.1,localhost,::1"
	return []string{
		"REQUESTS_CA_BUNDLE=" + l.CACertFile,
		"LEGO_CA_CERTIFICATES=" + l.CACertFile,
		"NO_PROXY=" + loop,
		"no_proxy=" + loop,
	}
}

// Tool returns the path of the binary name: $DANEHOOK_TOOLS/name (default
// DefaultToolsDir) when that is an executable file, else name looked up on
// PATH. The tools directory comes first so that, say, a Debian lego v4 on
// PATH never stands in for the lab's lego v5. The error wraps exec.ErrNotFound
// when the binary is in neither place.
func Tool(name string) (string, error) {
	dir := os.Getenv("DANEHOOK_TOOLS")
	if dir == "" {
		dir = DefaultToolsDir
	}
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%q is neither in %s nor on PATH (run scripts/install-acme.sh): %w", name, dir, exec.ErrNotFound)
	}
	return p, nil
}

// RequireTool returns Tool(name), or reports the binary missing with
// testenv.Missing: a skip, or a failure under CI=true.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := Tool(name)
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	return p
}

// Ports in this range are not handed out as ephemeral ports (Linux uses
// 32768-60999) and stay clear of bindlab's 20000-32000.
const portBase, portSpan = 10000, 10000

var portMu sync.Mutex

// freePorts returns n distinct TCP ports that are free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 500 {
		if len(ports) == n {
			return ports, nil
		}
		port := portBase + mrand.IntN(portSpan)
		ln, err := net.Listen("tcp4", hostPort(port))
		if err != nil {
			continue
		}
		held = append(held, ln) // also keeps the same port from being picked twice
		ports = append(ports, port)
	}
	if len(ports) == n {
		return ports, nil
	}
	return nil, fmt.Errorf("no %d free TCP ports on 127.0.0.1 in %d-%d", n, portBase, portBase+portSpan-1)
}

// hostPort joins 127.0.0.1 and port.
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
