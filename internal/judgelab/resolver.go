// Package judgelab is the lab's independent judge of DANE (issue 11): a
// validating, caching unbound resolver over the signed lab zone, and
// Postfix's own DANE client, posttls-finger -l dane-only, asking it — what a
// sending MTA does. Tests use it as the oracle instead of danehook's own
// verifier: a sample fails when the judge does not say "Verified TLS
// connection established" while a TLSA RRset exists.
//
// The resolver listens on port 53 of a free loopback address between
// 127.0.0.153 and 127.0.0.250, because posttls-finger uses the system
// resolver and resolv.conf cannot name a port. Each judge run sees it
// through a private mount namespace (unshare -m) in which a lab resolv.conf
// is bind-mounted over /etc/resolv.conf: the host's file is never changed,
// and nothing queries the host's own resolver. The resolver is stubbed to
// the lab's authoritative servers only, refuses every other name, sends
// from its own loopback address, and has root hints that name only an
// unused loopback address: it cannot send a packet off the machine.
//
// It needs unbound, posttls-finger (Debian's postfix package), unshare and
// mount (util-linux) and root; scripts/install-deps.sh installs them. Under
// CI=true a missing one fails the test (internal/testenv).
package judgelab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/miekg/dns"
)

// The resolver's addresses: port 53 of one address in 127.0.0.FirstIP ..
// 127.0.0.LastIP, picked at random among the free ones. 127.0.0.53 (the
// conventional systemd-resolved stub) and 127.0.0.1/127.0.0.2 (BIND) are
// outside the range.
const (
	FirstIP = 153
	LastIP  = 250
)

// unusedRoot is the only address the resolver's root hints name. Nothing
// listens there; the hints exist so that unbound's built-in root servers
// (on the internet) can never be primed.
const unusedRoot = "127.0.0.254"

// ResolverOptions configure StartResolver.
type ResolverOptions struct {
	// Zone is the signed lab zone ("example.test."), resolved through a
	// stub zone; every other name is refused.
	Zone string
	// Servers are the authoritative servers of Zone as "ip:port" (bindlab's
	// Primary and Secondary). All of them are listed in the stub zone, so a
	// lagging secondary can feed the cache, as on the internet.
	Servers []string
	// TrustAnchor holds the zone's DNSKEY (or DS) records in presentation
	// form, one a line: the resolver's only trust anchor (TrustAnchorFrom).
	TrustAnchor string
}

// Resolver is a running unbound: validating, caching (no cache-max-ttl, no
// negative-cache cap, never flushed), on Addr port 53. All fields are
// read-only.
type Resolver struct {
	Addr       string // "127.0.0.x"; the resolver listens on port 53
	ResolvConf string // a resolv.conf holding "nameserver <Addr>"
	AnchorFile string // the trust anchor file unbound reads
	Dir        string // configuration, log and pid file
	Log        string // unbound's log file
	Zone       string // the lab zone, absolute

	identity string
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	stopOnce sync.Once
}

// StartResolver writes an unbound configuration under t.TempDir(), starts
// `unbound -d` on a free loopback address, waits (at most 10 s) until it
// answers its identity and a validated (AD) SOA of opts.Zone, and registers
// a cleanup that stops it. When the test failed, the last 40 lines of its
// log are printed. It fails t when the resolver cannot start or does not
// validate the zone (a wrong trust anchor, an unsigned zone).
func StartResolver(t testing.TB, opts ResolverOptions) *Resolver {
	t.Helper()
	testenv.Require(t, "unbound")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (the lab resolver binds port 53)")
	}
	if opts.Zone == "" || len(opts.Servers) == 0 || strings.TrimSpace(opts.TrustAnchor) == "" {
		t.Fatalf("judgelab: StartResolver needs Zone, Servers and TrustAnchor; got %+v", opts)
	}
	r := &Resolver{Dir: t.TempDir(), Zone: dns.Fqdn(strings.ToLower(opts.Zone))}
	r.Log = filepath.Join(r.Dir, "unbound.log")
	r.AnchorFile = filepath.Join(r.Dir, "anchor.key")
	r.ResolvConf = filepath.Join(r.Dir, "resolv.conf")
	// unbound drops no privileges (username ""), but the judge's
	// posttls-finger reads resolv.conf as root too; keep the directory
	// readable for a chdir by anyone.
	if err := os.Chmod(r.Dir, 0o755); err != nil {
		t.Fatalf("judgelab: %v", err)
	}
	if err := os.WriteFile(r.AnchorFile, []byte(strings.TrimSpace(opts.TrustAnchor)+"\n"), 0o644); err != nil {
		t.Fatalf("judgelab: %v", err)
	}
	hints := fmt.Sprintf(".\t3600000\tIN\tNS\tjudgelab-root.invalid.\njudgelab-root.invalid.\t3600000\tIN\tA\t%s\n", unusedRoot)
	if err := os.WriteFile(filepath.Join(r.Dir, "root.hints"), []byte(hints), 0o644); err != nil {
		t.Fatalf("judgelab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("judgelab: last lines of unbound.log (%s):\n%s", r.Addr, testenv.Tail(r.Log, 40))
		}
		r.stop()
	})

	// An address found free can be taken by a parallel test package before
	// unbound binds it: unbound then exits (so-reuseport is off), or a
	// foreign identity answers. Try another address.
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("judgelab: %v", err)
		}
		r.Addr = addr
		r.identity = "judgelab-" + randomID()
		if err := r.writeConfig(opts); err != nil {
			t.Fatalf("judgelab: %v", err)
		}
		if lastErr = r.start(); lastErr == nil {
			break
		}
		r.stop()
		r.stopOnce = sync.Once{}
		if !errors.Is(lastErr, errBind) {
			t.Fatalf("judgelab: %v", lastErr)
		}
	}
	if lastErr != nil {
		t.Fatalf("judgelab: start unbound: %v", lastErr)
	}
	if err := os.WriteFile(r.ResolvConf, []byte("nameserver "+r.Addr+"\n"), 0o644); err != nil {
		t.Fatalf("judgelab: %v", err)
	}
	return r
}

// writeConfig writes unbound.conf for r.Addr.
func (r *Resolver) writeConfig(opts ResolverOptions) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# generated by judgelab: a validating, caching resolver for the lab zone only")
	p("server:")
	p("\tinterface: %s", r.Addr)
	p("\tport: 53")
	p("\tdo-ip4: yes")
	p("\tdo-ip6: no")
	p("\tdo-udp: yes")
	p("\tdo-tcp: yes")
	p("\tso-reuseport: no")
	p("\toutgoing-interface: %s", r.Addr)
	p("\taccess-control: 127.0.0.0/8 allow")
	p("\tusername: \"\"")
	p("\tchroot: \"\"")
	p("\tdirectory: %q", r.Dir)
	p("\tpidfile: %q", filepath.Join(r.Dir, "unbound.pid"))
	p("\tlogfile: %q", r.Log)
	p("\tuse-syslog: no")
	p("\tlog-time-ascii: yes")
	p("\tverbosity: 1")
	p("\tlog-servfail: yes")
	p("\tval-log-level: 2")
	p("\tnum-threads: 1")
	p("\tidentity: %q", r.identity)
	p("\thide-identity: no")
	p("\tmodule-config: \"validator iterator\"")
	p("\ttrust-anchor-file: %q", r.AnchorFile)
	p("\troot-hints: %q", filepath.Join(r.Dir, "root.hints"))
	p("\tdo-not-query-localhost: no")
	// No cache-max-ttl, cache-max-negative-ttl or prefetch: the cache keeps
	// what the zone's TTLs allow, the thing RFC 7671 §8.1's 2 x TTL rule
	// protects against.
	p("\tlocal-zone: \".\" refuse")
	if parent := parentZone(r.Zone); parent != "." {
		// unbound serves RFC 6761 names (test., invalid., …) as empty
		// static zones by default; "nodefault" removes that for the
		// parent, and "." refuse still covers its other names.
		p("\tlocal-zone: %q nodefault", parent)
	}
	p("\tlocal-zone: %q transparent", r.Zone)
	p("")
	p("stub-zone:")
	p("\tname: %q", r.Zone)
	for _, s := range opts.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("server %q: %w", s, err)
		}
		p("\tstub-addr: %s@%s", host, port)
	}
	p("")
	p("remote-control:")
	p("\tcontrol-enable: no")
	return os.WriteFile(filepath.Join(r.Dir, "unbound.conf"), []byte(b.String()), 0o644)
}

// parentZone returns the zone one label above zone ("test." for
// "example.test."), "." for a top-level zone.
func parentZone(zone string) string {
	labels := dns.SplitDomainName(zone)
	if len(labels) <= 1 {
		return "."
	}
	return dns.Fqdn(strings.Join(labels[1:], "."))
}

var errBind = errors.New("address in use")

// start runs unbound -d and waits until it is ready.
func (r *Resolver) start() error {
	conf := filepath.Join(r.Dir, "unbound.conf")
	if out, err := exec.Command("unbound-checkconf", conf).CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("unbound-checkconf"); lerr == nil {
			return fmt.Errorf("unbound-checkconf %s: %v: %s", conf, err, strings.TrimSpace(string(out)))
		}
	}
	stderr, err := os.OpenFile(filepath.Join(r.Dir, "unbound.stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	r.cmd = exec.Command("unbound", "-d", "-c", conf)
	r.cmd.Dir = r.Dir
	r.cmd.Stdout, r.cmd.Stderr = stderr, stderr
	r.cmd.SysProcAttr = sysProcAttr()
	r.done = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		stderr.Close()
		return fmt.Errorf("start unbound: %w", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		stderr.Close()
		close(r.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-r.done:
			tail := testenv.Tail(r.Log, 10) + testenv.Tail(filepath.Join(r.Dir, "unbound.stderr"), 10)
			if strings.Contains(tail, "bind") || strings.Contains(tail, "in use") {
				return fmt.Errorf("%w: unbound on %s exited: %v; %s", errBind, r.Addr, r.err, tail)
			}
			return fmt.Errorf("unbound on %s exited: %v; %s", r.Addr, r.err, tail)
		case <-ctx.Done():
			return fmt.Errorf("unbound on %s not ready: %v; %s", r.Addr, last, testenv.Tail(r.Log, 20))
		case <-time.After(20 * time.Millisecond):
		}
		if last = r.ready(); last == nil {
			return nil
		}
		if errors.Is(last, errBind) {
			return last
		}
	}
}

// ready checks that r's own unbound answers id.server and a validated SOA
// of the zone.
func (r *Resolver) ready() error {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("id.server.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	a, _, err := c.Exchange(q, r.addrPort())
	if err != nil {
		return err
	}
	if len(a.Answer) != 1 {
		return fmt.Errorf("id.server: rcode %s", dns.RcodeToString[a.Rcode])
	}
	if txt, ok := a.Answer[0].(*dns.TXT); !ok || strings.Join(txt.Txt, "") != r.identity {
		return fmt.Errorf("%w: a foreign server answers on %s: %s", errBind, r.addrPort(), a.Answer[0])
	}
	m, err := r.Query(context.Background(), r.Zone, dns.TypeSOA)
	if err != nil {
		return err
	}
	if m.Rcode != dns.RcodeSuccess || !m.AuthenticatedData {
		return fmt.Errorf("SOA %s through the resolver: rcode %s, ad=%v (is the zone signed and the trust anchor right?)",
			r.Zone, dns.RcodeToString[m.Rcode], m.AuthenticatedData)
	}
	return nil
}

func (r *Resolver) addrPort() string { return net.JoinHostPort(r.Addr, "53") }

// Query asks the resolver (recursion desired, DNSSEC OK, over TCP) for
// name and type, as a validating stub would: the answer's AD flag says
// whether the resolver validated it, and the TTLs are what remains in its
// cache. It returns an error only when the resolver does not answer.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.SetEdns0(1232, true)
	m, _, err := c.ExchangeContext(ctx, q, r.addrPort())
	if err != nil {
		return nil, fmt.Errorf("%s %s at the lab resolver %s: %w", dns.TypeToString[qtype], name, r.addrPort(), err)
	}
	return m, nil
}

// stop sends SIGTERM, waits up to 5 s, then kills.
func (r *Resolver) stop() {
	r.stopOnce.Do(func() {
		if r.cmd == nil || r.cmd.Process == nil || r.done == nil {
			return
		}
		select {
		case <-r.done:
			return
		default:
		}
		_ = r.cmd.Process.Signal(terminate)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
}

// freeAddr returns a random address in the resolver range whose port 53 is
// free for UDP and TCP at the time of the call.
func freeAddr() (string, error) {
	n := LastIP - FirstIP + 1
	start := mrand.IntN(n)
	for i := range n {
		addr := fmt.Sprintf("127.0.0.%d", FirstIP+(start+i)%n)
		if portFree(addr) {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free port 53 on 127.0.0.%d-%d", FirstIP, LastIP)
}

func portFree(addr string) bool {
	hp := net.JoinHostPort(addr, "53")
	ln, err := net.Listen("tcp4", hp)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", hp)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// TrustAnchorFrom asks server ("ip:port") directly over TCP, without
// recursion, for zone's DNSKEY RRset and returns the keys with flags 257
// (KSK or CSK) in presentation form, one a line: the trust anchor for
// StartResolver. It polls for up to 10 s, because a freshly signed zone
// publishes its keys shortly after loading, and fails t when none appear.
func TrustAnchorFrom(t testing.TB, server, zone string) string {
	t.Helper()
	zone = dns.Fqdn(zone)
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		keys, err := ksks(server, zone)
		if err == nil && len(keys) > 0 {
			return strings.Join(keys, "\n") + "\n"
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "no DNSKEY with flags 257"
		}
		if time.Now().After(deadline) {
			t.Fatalf("judgelab: trust anchor of %s at %s: %s (is the zone signed?)", zone, server, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ksks(server, zone string) ([]string, error) {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeDNSKEY)
	q.RecursionDesired = false
	q.SetEdns0(4096, true)
	m, _, err := c.Exchange(q, server)
	if err != nil {
		return nil, err
	}
	if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
		return nil, fmt.Errorf("DNSKEY %s at %s: rcode %s, aa=%v", zone, server, dns.RcodeToString[m.Rcode], m.Authoritative)
	}
	var out []string
	for _, rr := range m.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags == 257 {
			out = append(out, k.String())
		}
	}
	return out, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
