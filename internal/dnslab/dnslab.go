// Package dnslab is what the test labs of real authoritative servers share:
// the description of a running lab (Lab: a primary and a secondary on one
// loopback port, its zones and TSIG keys), the Options every lab accepts,
// and the helpers lab packages use to start a server process, pick a port,
// write TSIG key files and wait for a zone.
//
// The labs themselves live beside it, one package per product:
// internal/bindlab (BIND 9), internal/knotlab (Knot DNS), internal/pdnslab
// (PowerDNS Authoritative). StartBIND adapts bindlab to a *Lab, so one test
// suite can run over all three (pkg/dnsupdate's interop test).
//
// Every lab serves, in each zone:
//
//	<zone>        SOA  ns1.<zone> hostmaster.<zone> 1 <refresh 2> <retry 1> 86400 <TTL>
//	<zone>        NS   ns1.<zone>.  and  ns2.<zone>.
//	ns1.<zone>    A    127.0.0.1   (the primary)
//	ns2.<zone>    A    127.0.0.2   (the secondary)
//	mail.<zone>   A    127.0.0.1
//
// so NS discovery (pkg/propagate) leads to both servers on the lab's port.
package dnslab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/miekg/dns"
)

// Addresses of the two servers of every lab (both on lo; see LAB-NOTES §2).
const (
	PrimaryIP   = "127.0.0.1"
	SecondaryIP = "127.0.0.2"
)

// DefaultZone is the zone served when Options.Zones is empty.
const DefaultZone = "example.test."

// DefaultKeyName is the name of the lab's update and transfer key.
const DefaultKeyName = "danehook-key."

// Options configure a lab. The zero value serves example.test. with a 2 s
// TTL, unsigned, with the lab key (hmac-sha256) allowed to update any name.
type Options struct {
	// Zones are absolute zone names; default {DefaultZone}.
	Zones []string
	// TTL of the zone's records and the SOA minimum, in seconds; default 2.
	TTL uint32
	// Signed signs the zones on the primary (each product's automatic
	// signing); Start returns once both servers serve them signed with the
	// same serial.
	Signed bool
	// ExtraKeys are further TSIG keys with their own rights.
	ExtraKeys []ExtraKey
}

// ExtraKey is a further TSIG key. With Zone it may update any name of every
// zone like the lab key; with Owners it may update only TLSA records at
// exactly those absolute owners (BIND `grant … name <owner> TLSA`, Knot
// `update-owner: name` + `update-type: [TLSA]`); with neither the server
// knows the key but grants it nothing (an UPDATE signed with it is refused
// by policy). A lab whose product cannot express Owners fails the test
// (Lab.OwnerGrants tells which can).
type ExtraKey struct {
	Name      string // key name, made absolute
	Algorithm string // default "hmac-sha256"
	Zone      bool
	Owners    []string
}

// Key is a TSIG key of a lab. File is a BIND-format key file (mode 0600),
// read by `nsupdate -k` and dnsupdate.LoadTSIGKeyFile.
type Key struct {
	Name      string // absolute, e.g. "danehook-key."
	Algorithm string // e.g. "hmac-sha256"
	Secret    string // base64; tests must never print it
	File      string
}

// Lab is a running primary and secondary. All fields are read-only.
type Lab struct {
	// Product is the primary's software: "BIND", "Knot" or "PowerDNS";
	// SecondaryProduct the secondary's.
	Product, SecondaryProduct string
	// Version is the primary's version string (e.g. "3.2.6").
	Version string
	Dir     string // the lab's directory (configs, databases, logs)
	Port    int    // DNS port, UDP and TCP, on both addresses
	// Primary is "127.0.0.1:PORT", Secondary "127.0.0.2:PORT".
	Primary, Secondary string
	Zones              []string
	TTL                uint32
	Signed             bool
	// Key is the lab key (DefaultKeyName, hmac-sha256): updates anywhere in
	// every zone, and zone transfers to the secondary.
	Key Key
	// Keys maps the absolute name of every ExtraKey to its Key.
	Keys map[string]Key
	// OwnerGrants reports whether the product can limit a key to TLSA at
	// named owners (ExtraKey.Owners) in its plain configuration.
	OwnerGrants bool
	// Logs are the servers' log files, printed (last lines) when a test fails.
	Logs []string
}

// Normalize fills the defaults of opts: zones absolute and lower case
// (default DefaultZone), TTL 2, extra key names absolute with an algorithm.
func Normalize(opts Options) Options {
	if len(opts.Zones) == 0 {
		opts.Zones = []string{DefaultZone}
	}
	zones := make([]string, len(opts.Zones))
	for i, z := range opts.Zones {
		zones[i] = dns.Fqdn(strings.ToLower(z))
	}
	opts.Zones = zones
	if opts.TTL == 0 {
		opts.TTL = 2
	}
	keys := make([]ExtraKey, len(opts.ExtraKeys))
	for i, k := range opts.ExtraKeys {
		k.Name = dns.Fqdn(strings.ToLower(k.Name))
		if k.Algorithm == "" {
			k.Algorithm = "hmac-sha256"
		}
		keys[i] = k
	}
	opts.ExtraKeys = keys
	return opts
}

// ZoneText returns the zone file of zone (see the package doc) with ttl.
func ZoneText(zone string, ttl uint32) string {
	return fmt.Sprintf(`$ORIGIN %[1]s
$TTL %[2]d
@	IN SOA ns1.%[1]s hostmaster.%[1]s 1 2 1 86400 %[2]d
@	IN NS ns1.%[1]s
@	IN NS ns2.%[1]s
ns1	IN A 127.0.0.1
ns2	IN A 127.0.0.2
mail	IN A 127.0.0.1
`, zone, ttl)
}

// macSize is the HMAC output length, the secret length NewKey uses
// (RFC 8945 §6 recommends a key as long as the hash output).
var macSize = map[string]int{
	"hmac-md5": 16, "hmac-sha1": 20, "hmac-sha224": 28,
	"hmac-sha256": 32, "hmac-sha384": 48, "hmac-sha512": 64,
}

// NewKey makes a random key named name (made absolute) for algorithm and
// writes it as a BIND key file at path with mode 0600.
func NewKey(path, name, algorithm string) (Key, error) {
	n, ok := macSize[algorithm]
	if !ok {
		return Key{}, fmt.Errorf("dnslab: unknown TSIG algorithm %q", algorithm)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return Key{}, err
	}
	k := Key{Name: dns.Fqdn(name), Algorithm: algorithm, Secret: base64.StdEncoding.EncodeToString(b), File: path}
	text := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(k.Name, "."), algorithm, k.Secret)
	return k, os.WriteFile(path, []byte(text), 0o600)
}

// RandomID returns 12 hex digits that tell one lab's servers from another's.
func RandomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a port free for UDP and TCP on PrimaryIP and SecondaryIP
// at the time of the call, below the kernel's ephemeral range.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + mrand.IntN(12000)
		if portFree(port) {
			return port
		}
	}
	t.Fatalf("dnslab: no free port found")
	return 0
}

func portFree(port int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, ip := range []string{PrimaryIP, SecondaryIP} {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return false
		}
		closers = append(closers, ln)
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		closers = append(closers, pc)
	}
	return true
}

// RequireLoopbackAlias reports SecondaryIP missing from lo as a missing
// component (scripts/install-deps.sh adds it).
func RequireLoopbackAlias(t testing.TB) {
	t.Helper()
	c, err := net.ListenPacket("udp4", net.JoinHostPort(SecondaryIP, "0"))
	if err != nil {
		testenv.Missing(t, SecondaryIP+" on lo ("+err.Error()+"); run scripts/install-deps.sh or `ip addr add 127.0.0.2/8 dev lo`")
		return
	}
	c.Close()
}

// Process is one server process run in the foreground as a child of the
// test, its output appended to Log.
type Process struct {
	Name string // for messages, e.g. "knotd (primary)"
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts argv in dir with stdout and stderr appended to log.
// The kernel kills it when the test process dies (Pdeathsig).
func StartProcess(name, dir, log string, argv ...string) (*Process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &Process{Name: name, Log: log, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited returns a channel closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitError describes how the process ended and the last lines of its log.
func (p *Process) ExitError() error {
	return fmt.Errorf("%s exited: %v:\n%s", p.Name, p.err, testenv.Tail(p.Log, 15))
}

// Stop sends SIGTERM, waits up to 5 s, then kills. Safe on nil.
func (p *Process) Stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ErrForeign is returned by WaitReady when another server answers on the
// port (a parallel test took it first): pick another port.
var ErrForeign = errors.New("another server answers on this port")

// WaitReady polls addr every 20 ms until it answers version.bind CH TXT
// with version and the SOA of every zone authoritatively over TCP (and,
// with signed, serves each zone's SOA and DNSKEY with RRSIGs), the process
// exits, or ctx ends.
func WaitReady(ctx context.Context, p *Process, addr, version string, zones []string, signed bool) error {
	var last error
	for {
		select {
		case <-p.Exited():
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("%s on %s not ready: %v", p.Name, addr, last)
		case <-time.After(20 * time.Millisecond):
		}
		last = ready(addr, version, zones, signed)
		if last == nil || errors.Is(last, ErrForeign) {
			return last
		}
	}
}

func ready(addr, version string, zones []string, signed bool) error {
	c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion("version.bind.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	q.RecursionDesired = false
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return err
	}
	if len(r.Answer) != 1 {
		return fmt.Errorf("version.bind: rcode %s", dns.RcodeToString[r.Rcode])
	}
	if txt, ok := r.Answer[0].(*dns.TXT); !ok || strings.Join(txt.Txt, "") != version {
		return fmt.Errorf("%w: %s", ErrForeign, r.Answer[0])
	}
	for _, z := range zones {
		if _, err := SOASerial(addr, z); err != nil {
			return err
		}
		if signed {
			if err := servesSigned(addr, z); err != nil {
				return err
			}
		}
	}
	return nil
}

func servesSigned(addr, zone string) error {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	for _, qt := range []uint16{dns.TypeSOA, dns.TypeDNSKEY} {
		q := new(dns.Msg)
		q.SetQuestion(zone, qt)
		q.RecursionDesired = false
		q.SetEdns0(4096, true)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			return err
		}
		var data, sig bool
		for _, rr := range r.Answer {
			if s, ok := rr.(*dns.RRSIG); ok {
				sig = sig || s.TypeCovered == qt
			} else {
				data = data || rr.Header().Rrtype == qt
			}
		}
		if !data || !sig {
			return fmt.Errorf("%s %s at %s: not signed yet", zone, dns.TypeToString[qt], addr)
		}
	}
	return nil
}

// SOASerial asks addr over TCP for zone's SOA and returns its serial; the
// answer must be authoritative.
func SOASerial(addr, zone string) (uint32, error) {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	q.RecursionDesired = false
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return 0, err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return 0, fmt.Errorf("SOA %s at %s: rcode %s, aa=%v", zone, addr, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("SOA %s at %s: no SOA in answer", zone, addr)
}

// WaitInSync waits until the secondary serves every zone with the
// primary's serial.
func (l *Lab) WaitInSync(ctx context.Context) error {
	for _, z := range l.Zones {
		for {
			p, perr := SOASerial(l.Primary, z)
			s, serr := SOASerial(l.Secondary, z)
			if perr == nil && serr == nil && p == s {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: secondary serial %d (%v) never reached the primary's %d (%v)", z, s, serr, p, perr)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Serial returns the SOA serial of zone at addr ("IP:PORT"); it fails t when
// the server does not answer authoritatively.
func (l *Lab) Serial(t testing.TB, addr, zone string) uint32 {
	t.Helper()
	s, err := SOASerial(addr, zone)
	if err != nil {
		t.Fatalf("dnslab %s: %v", l.Product, err)
	}
	return s
}

// WaitSerial polls addr every 20 ms until it serves zone with a serial equal
// to or newer than serial (RFC 1982), failing t after timeout.
func (l *Lab) WaitSerial(t testing.TB, addr, zone string, serial uint32, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		s, err := SOASerial(addr, zone)
		if err == nil && int32(s-serial) >= 0 {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("serial %d", s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnslab %s: %s at %s did not reach serial %d within %v: last %s", l.Product, zone, addr, serial, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nsupdate runs `nsupdate -k <lab key file>` against the primary with
// script on stdin (a server line is prepended and send appended unless the
// script has them); it fails t with nsupdate's output when it fails.
func (l *Lab) Nsupdate(t testing.TB, script string) {
	t.Helper()
	if out, err := l.NsupdateKey(l.Key.File, script); err != nil {
		t.Fatalf("dnslab %s: %v: %s", l.Product, err, out)
	}
}

// NsupdateKey runs `nsupdate -k keyFile` like Nsupdate and returns its
// combined output and an error when nsupdate exits non-zero.
func (l *Lab) NsupdateKey(keyFile, script string) (string, error) {
	var b strings.Builder
	if !hasCommand(script, "server") {
		fmt.Fprintf(&b, "server %s %d\n", PrimaryIP, l.Port)
	}
	b.WriteString(script)
	if !strings.HasSuffix(script, "\n") {
		b.WriteByte('\n')
	}
	if !hasCommand(script, "send") {
		b.WriteString("send\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsupdate", "-k", keyFile)
	cmd.Stdin = strings.NewReader(b.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsupdate: %w", err)
	}
	return string(out), nil
}

func hasCommand(script, cmd string) bool {
	for _, line := range strings.Split(script, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == cmd {
			return true
		}
	}
	return false
}

// DumpLogs prints the last 40 lines of every log of l when t failed.
func (l *Lab) DumpLogs(t testing.TB) {
	if !t.Failed() {
		return
	}
	for _, f := range l.Logs {
		t.Logf("dnslab %s: last lines of %s:\n%s", l.Product, f, testenv.Tail(f, 40))
	}
}

// Run runs a helper command (pdnsutil, keymgr …) with a 30 s timeout and
// returns its combined output; the error quotes the output, which must not
// hold a secret (callers pass secrets in files or accept that the command
// line is visible to local users of the lab).
func Run(dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(argv[0]), argv[1], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
