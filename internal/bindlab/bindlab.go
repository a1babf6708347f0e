// Package bindlab starts a real BIND 9 primary and secondary on loopback for
// tests: one or more dynamic zones updatable with a TSIG key, NOTIFY + IXFR
// from the primary (127.0.0.1:PORT) to the secondary (127.0.0.2:PORT), and
// knobs to make the secondary lag (BlockTransfers) or vanish (StopSecondary).
//
// Every Start is independent: its own directory under t.TempDir(), its own
// DNS port and rndc control port, pid files, keys and logs, so test packages
// can run in parallel. named runs in the foreground (named -f) as a child of
// the test process and is stopped by t.Cleanup. When the test failed, the last
// 50 lines of each server's log are printed (they never hold key secrets).
//
// Each zone holds:
//
//	<zone>        SOA  ns1.<zone> hostmaster.<zone> 1 <refresh 2> <retry 1> 86400 <TTL>
//	<zone>        NS   ns1.<zone>.  and  ns2.<zone>.
//	ns1.<zone>    A    127.0.0.1   (the primary)
//	ns2.<zone>    A    127.0.0.2   (the secondary)
//	mail.<zone>   A    127.0.0.1   (and each of Options.Hosts)
//
// so NS discovery leads to both servers, which listen on the same port.
package bindlab

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/miekg/dns"
)

// Addresses of the two servers. Both must be on lo (named only listens on
// addresses its interface scan finds; see LAB-NOTES §2).
const (
	PrimaryIP   = "127.0.0.1"
	SecondaryIP = "127.0.0.2"
)

// DefaultZone is the zone served when Options.Zones is empty.
const DefaultZone = "example.test."

// DefaultKeyName is the name of the update and transfer key.
const DefaultKeyName = "danehook-key."

// Options configure a Lab. The zero value serves example.test. with a 2 s TTL,
// unsigned, the key granted `zonesub ANY`.
type Options struct {
	// Zones are absolute zone names ("example.test."); default {DefaultZone}.
	Zones []string
	// TTL is the TTL of the zone's records and the SOA minimum (the negative
	// caching TTL, RFC 2308), in seconds; default 2.
	TTL uint32
	// Signed signs the zones on the primary with `dnssec-policy default;
	// inline-signing no;` (one ECDSAP256SHA256 CSK); the secondary transfers
	// the signed zone. Start returns once both servers serve the zone signed
	// with the same serial, so a validating resolver may ask either.
	Signed bool
	// Policy holds extra update-policy lines added to every zone after the
	// default grant of the lab key (`grant "<key>" zonesub ANY;`). The text
	// "{key}" is replaced by the lab key name.
	Policy string
	// ExtraKeys are further TSIG keys, each with its own grants (for example
	// a key allowed to change only one owner, to provoke REFUSED).
	ExtraKeys []ExtraKey
	// Hosts are further names, relative to each zone ("mx2"), served as
	// A 127.0.0.1 beside mail.<zone>: extra MX hosts for tests that add and
	// remove hosts (the ACME server resolves them for HTTP-01).
	Hosts []string
	// UnsignedView, when not empty, makes the primary serve two views
	// (BIND `view`, chosen by `match-clients`): requests signed with the lab
	// key (UPDATEs, signed queries, the secondary's transfers) get the
	// dynamic zones as usual; every other client gets a static copy of each
	// zone made at start, with SOA serial 1000 and these extra zone-file
	// lines (relative names, e.g. "_25._tcp.mail IN TLSA 3 1 1 <hex>").
	// Unsigned queries to the primary then see another version of the
	// zone than signed ones, as with `match-clients { key …; }` in
	// production. Not with Signed.
	UnsignedView string
	// SecondaryTransfers makes the secondary allow zone transfers to the
	// lab key (`allow-transfer { key …; };`, default none), as a secondary
	// that lets danehook read zones whole (pkg/dnsupdate transfer.go).
	SecondaryTransfers bool
}

// ExtraKey is an additional TSIG key created by tsig-keygen. Its Grants are
// update-policy lines added to every zone verbatim, e.g.
// `grant "narrow." name _25._tcp.mail.example.test. TLSA;`. A key without
// grants is known to the server but may change nothing.
type ExtraKey struct {
	Name      string // key name; made absolute
	Algorithm string // default "hmac-sha256"
	Grants    []string
}

// Key is a TSIG key created for the lab. File is the tsig-keygen output
// (mode 0600), accepted by `nsupdate -k` and by dnsupdate.LoadTSIGKeyFile.
type Key struct {
	Name      string // absolute key name, e.g. "danehook-key."
	Algorithm string // e.g. "hmac-sha256"
	File      string
}

// Secret returns the base64 secret read from the key file. Tests must never
// print it.
func (k Key) Secret() string {
	s, err := readSecret(k.File)
	if err != nil {
		return ""
	}
	return s
}

// Lab is a running BIND primary + secondary. All fields are read-only.
type Lab struct {
	Dir       string // the lab's directory (configs, zone files, logs)
	Port      int    // DNS port, UDP and TCP, the same on both addresses
	Primary   string // "127.0.0.1:PORT"
	Secondary string // "127.0.0.2:PORT"
	Zones     []string
	TTL       uint32

	KeyName      string // absolute name of the update/transfer key
	KeyAlgorithm string // "hmac-sha256"
	KeyFile      string // tsig-keygen output, mode 0600

	// Keys maps the absolute name of every ExtraKey to its Key.
	Keys map[string]Key

	opts        Options
	id          string
	controlPort int

	mu        sync.Mutex
	blocked   bool
	primary   *server
	secondary *server
}

// server is one running named process.
type server struct {
	role string // "primary" or "secondary"
	addr string // IP
	dir  string
	conf string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // exit status, valid after done
}

// Start creates the lab's keys, zone files and configs under t.TempDir(),
// starts both named processes, waits until both answer the SOA of every zone
// over TCP (about a second; at most 10 s) and registers a cleanup that stops
// them. It needs named, tsig-keygen and rndc (testenv.Require) and 127.0.0.2
// on lo, which it adds when missing (as root); if that fails the component is
// reported missing (skip, or failure under CI=true).
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	testenv.Require(t, "named", "tsig-keygen", "rndc")
	ensureLoopbackAlias(t)

	zones := []string{DefaultZone}
	if len(opts.Zones) > 0 {
		zones = make([]string, len(opts.Zones))
		for i, z := range opts.Zones {
			zones[i] = dns.Fqdn(strings.ToLower(z))
		}
	}
	opts.Zones = zones
	if opts.TTL == 0 {
		opts.TTL = 2
	}
	l := &Lab{
		Dir:          t.TempDir(),
		Zones:        opts.Zones,
		TTL:          opts.TTL,
		KeyName:      DefaultKeyName,
		KeyAlgorithm: "hmac-sha256",
		Keys:         map[string]Key{},
		opts:         opts,
		id:           randomID(),
	}
	l.KeyFile = filepath.Join(l.Dir, "key.conf")
	if err := tsigKeygen(l.KeyFile, l.KeyName, l.KeyAlgorithm); err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	for i, ek := range opts.ExtraKeys {
		k := Key{Name: dns.Fqdn(ek.Name), Algorithm: ek.Algorithm, File: filepath.Join(l.Dir, fmt.Sprintf("extra-key-%d.conf", i))}
		if k.Algorithm == "" {
			k.Algorithm = "hmac-sha256"
		}
		if err := tsigKeygen(k.File, k.Name, k.Algorithm); err != nil {
			t.Fatalf("bindlab: %v", err)
		}
		l.Keys[k.Name] = k
	}
	if err := tsigKeygen(filepath.Join(l.Dir, "rndc-key.conf"), "rndc-key", "hmac-sha256"); err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	for _, role := range []string{"primary", "secondary"} {
		if err := os.MkdirAll(filepath.Join(l.Dir, role), 0o700); err != nil {
			t.Fatalf("bindlab: %v", err)
		}
	}
	if opts.Signed {
		if err := os.MkdirAll(filepath.Join(l.Dir, "primary", "keys"), 0o700); err != nil {
			t.Fatalf("bindlab: %v", err)
		}
	}
	for _, z := range l.Zones {
		if err := os.WriteFile(l.zoneFile(z), []byte(zoneText(z, l.TTL, opts.Hosts)), 0o600); err != nil {
			t.Fatalf("bindlab: %v", err)
		}
		if opts.UnsignedView != "" {
			text := strings.Replace(zoneText(z, l.TTL, opts.Hosts), " 1 2 1 86400 ", " 1000 2 1 86400 ", 1) + opts.UnsignedView + "\n"
			if err := os.WriteFile(l.viewFile(z), []byte(text), 0o600); err != nil {
				t.Fatalf("bindlab: %v", err)
			}
		}
	}

	t.Cleanup(func() {
		if t.Failed() {
			l.dumpLogs(t)
		}
		l.stopAll()
	})

	// A port picked free can be taken by a parallel test before named binds
	// it: detect that (named exits, or another lab answers) and retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l.Port = freePort(t, "udp", "tcp")
		l.controlPort = freePort(t, "tcp")
		l.Primary = net.JoinHostPort(PrimaryIP, strconv.Itoa(l.Port))
		l.Secondary = net.JoinHostPort(SecondaryIP, strconv.Itoa(l.Port))
		if lastErr = l.startBoth(); lastErr == nil {
			return l
		}
		l.stopAll()
	}
	t.Fatalf("bindlab: start: %v", lastErr)
	return nil
}

// startBoth writes the configs, starts both servers and waits for them.
func (l *Lab) startBoth() error {
	if err := l.writeConfigs(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	l.mu.Lock()
	l.primary, err = l.startServer("primary", PrimaryIP)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.waitReady(ctx, l.primary); err != nil {
		return err
	}
	l.mu.Lock()
	l.secondary, err = l.startServer("secondary", SecondaryIP)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.waitReady(ctx, l.secondary); err != nil {
		return err
	}
	if l.opts.Signed {
		return l.waitInSync(ctx)
	}
	return nil
}

// waitInSync waits until the secondary serves every zone with the
// primary's serial: a signed zone changes on the primary right after it
// loads (the signing), and a resolver stubbed to both servers must find the
// same signed zone at each.
func (l *Lab) waitInSync(ctx context.Context) error {
	for _, z := range l.Zones {
		for {
			p, perr := soaSerial(l.Primary, z)
			s, serr := soaSerial(l.Secondary, z)
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

// Zone file paths.
func (l *Lab) zoneFile(zone string) string {
	return filepath.Join(l.Dir, "primary", strings.TrimSuffix(zone, ".")+".db")
}

// viewFile is the zone file of the unsigned view's copy (UnsignedView).
func (l *Lab) viewFile(zone string) string {
	return filepath.Join(l.Dir, "primary", strings.TrimSuffix(zone, ".")+".unsigned-view.db")
}

func zoneText(zone string, ttl uint32, hosts []string) string {
	var extra strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&extra, "%s\tIN A 127.0.0.1\n", h)
	}
	return fmt.Sprintf(`$ORIGIN %[1]s
$TTL %[2]d
@	IN SOA ns1.%[1]s hostmaster.%[1]s 1 2 1 86400 %[2]d
@	IN NS ns1.%[1]s
@	IN NS ns2.%[1]s
ns1	IN A 127.0.0.1
ns2	IN A 127.0.0.2
mail	IN A 127.0.0.1
`, zone, ttl) + extra.String()
}

var confTemplate = template.Must(template.New("named.conf").Parse(`# generated by bindlab for lab {{.ID}} ({{.Role}})
include "{{.Dir}}/key.conf";
include "{{.Dir}}/rndc-key.conf";
{{range .ExtraKeyFiles}}include "{{.}}";
{{end}}
controls {
	inet {{.Addr}} port {{.ControlPort}} allow { {{.Addr}}; 127.0.0.1; } keys { "rndc-key"; };
};

logging {
	channel lab {
		file "{{.RoleDir}}/named.log" versions unlimited size 50m;
		print-time yes;
		print-category yes;
		print-severity yes;
		severity info;
	};
	category default { lab; };
	category lame-servers { null; };
};

options {
	directory "{{.RoleDir}}";
	pid-file "{{.RoleDir}}/named.pid";
	session-keyfile "{{.RoleDir}}/session.key";
	managed-keys-directory "{{.RoleDir}}";
	dump-file "{{.RoleDir}}/named_dump.db";
	statistics-file "{{.RoleDir}}/named.stats";
	version "{{.Version}}";
	listen-on port {{.Port}} { {{.Addr}}; };
	listen-on-v6 { none; };
	recursion no;
	allow-recursion { none; };
	dnssec-validation no;
	notify-source {{.Addr}};
	transfer-source {{.Addr}};
	query-source address {{.Addr}};
	min-refresh-time 1;
	min-retry-time 1;
	notify-delay 0;
{{- if eq .Role "primary"}}
{{- if .Blocked}}
	notify no;
	allow-transfer { none; };
{{- else}}
	notify explicit;
	also-notify { {{.SecondaryIP}} port {{.Port}} key "{{.KeyName}}"; };
	allow-transfer { key "{{.KeyName}}"; };
{{- end}}
{{- else}}
	notify no;
{{- if .SecondaryTransfers}}
	allow-transfer { key "{{.KeyName}}"; };
{{- else}}
	allow-transfer { none; };
{{- end}}
{{- end}}
};
{{- if .Views}}
view "keyed" {
	match-clients { key "{{.KeyName}}"; };
{{- end}}
{{range .Zones}}
zone "{{.Name}}" {
{{- if eq $.Role "primary"}}
	type primary;
	file "{{.File}}";
	update-policy {
		grant "{{$.KeyName}}" zonesub ANY;
{{- range $.Grants}}
		{{.}}
{{- end}}
	};
{{- if $.Signed}}
	dnssec-policy default;
	inline-signing no;
	key-directory "{{$.RoleDir}}/keys";
{{- end}}
{{- else}}
	type secondary;
	file "{{.File}}";
	masterfile-format text;
	primaries { {{$.PrimaryIP}} port {{$.Port}} key "{{$.KeyName}}"; };
	allow-notify { {{$.PrimaryIP}}; };
{{- end}}
};
{{end}}
{{- if .Views}}
};
view "unsigned" {
	match-clients { any; };
{{- range .Zones}}
	zone "{{.Name}}" {
		type primary;
		file "{{.ViewFile}}";
		notify no;
		allow-transfer { none; };
	};
{{- end}}
};
{{end}}`))

type confZone struct{ Name, File, ViewFile string }

// writeConfigs writes primary/named.conf, secondary/named.conf and rndc.conf.
func (l *Lab) writeConfigs() error {
	var grants []string
	for _, line := range strings.Split(l.opts.Policy, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			grants = append(grants, strings.ReplaceAll(line, "{key}", l.KeyName))
		}
	}
	var extraFiles []string
	for _, ek := range l.opts.ExtraKeys {
		k := l.Keys[dns.Fqdn(ek.Name)]
		extraFiles = append(extraFiles, k.File)
		grants = append(grants, ek.Grants...)
	}
	for _, role := range []string{"primary", "secondary"} {
		addr := PrimaryIP
		if role == "secondary" {
			addr = SecondaryIP
		}
		roleDir := filepath.Join(l.Dir, role)
		var zones []confZone
		for _, z := range l.Zones {
			f := l.zoneFile(z)
			if role == "secondary" {
				f = filepath.Join(roleDir, strings.TrimSuffix(z, ".")+".db")
			}
			zones = append(zones, confZone{Name: z, File: f, ViewFile: l.viewFile(z)})
		}
		var b bytes.Buffer
		err := confTemplate.Execute(&b, map[string]any{
			"ID": l.id, "Role": role, "Dir": l.Dir, "RoleDir": roleDir, "Addr": addr,
			"Port": l.Port, "ControlPort": l.controlPort, "Version": l.version(role),
			"KeyName": l.KeyName, "ExtraKeyFiles": extraFiles, "Grants": grants,
			"Zones": zones, "Signed": l.opts.Signed, "Blocked": l.blocked,
			"PrimaryIP": PrimaryIP, "SecondaryIP": SecondaryIP,
			"Views":              role == "primary" && l.opts.UnsignedView != "",
			"SecondaryTransfers": l.opts.SecondaryTransfers,
		})
		if err != nil {
			return fmt.Errorf("render %s named.conf: %w", role, err)
		}
		if err := os.WriteFile(filepath.Join(roleDir, "named.conf"), b.Bytes(), 0o600); err != nil {
			return err
		}
	}
	rndcConf := fmt.Sprintf("include %q;\noptions { default-key \"rndc-key\"; default-server %s; default-port %d; };\n",
		filepath.Join(l.Dir, "rndc-key.conf"), PrimaryIP, l.controlPort)
	return os.WriteFile(filepath.Join(l.Dir, "rndc.conf"), []byte(rndcConf), 0o600)
}

// version is the string each server answers to version.bind CH TXT; it tells
// this lab's servers from a parallel lab that grabbed the same port.
func (l *Lab) version(role string) string { return "bindlab-" + l.id + "-" + role }

// startServer starts named -f for role.
func (l *Lab) startServer(role, addr string) (*server, error) {
	dir := filepath.Join(l.Dir, role)
	s := &server{
		role: role, addr: addr, dir: dir,
		conf: filepath.Join(dir, "named.conf"),
		log:  filepath.Join(dir, "named.log"),
		done: make(chan struct{}),
	}
	stderr, err := os.OpenFile(filepath.Join(dir, "named.stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// -f: foreground, logging as configured; -4: IPv4 only. No -u: runs as
	// the test's user (root here).
	s.cmd = exec.Command("named", "-f", "-4", "-c", s.conf)
	s.cmd.Dir = dir
	s.cmd.Stdout = stderr
	s.cmd.Stderr = stderr
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		stderr.Close()
		return nil, fmt.Errorf("start named (%s): %w", role, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		stderr.Close()
		close(s.done)
	}()
	return s, nil
}

// waitReady polls s until it answers version.bind with this lab's version
// and the SOA of every zone with AA over TCP.
func (l *Lab) waitReady(ctx context.Context, s *server) error {
	addr := net.JoinHostPort(s.addr, strconv.Itoa(l.Port))
	var last error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("named (%s) exited: %v; %s", s.role, s.err, testenv.Tail(s.log, 10)+testenv.Tail(filepath.Join(s.dir, "named.stderr"), 10))
		case <-ctx.Done():
			return fmt.Errorf("named (%s) on %s not ready: %v", s.role, addr, last)
		case <-time.After(20 * time.Millisecond):
		}
		last = l.ready(addr, s.role)
		if last == nil {
			return nil
		}
		if errors.Is(last, errForeignServer) {
			return last
		}
	}
}

var errForeignServer = errors.New("another server answers on this port")

func (l *Lab) ready(addr, role string) error {
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
	if txt, ok := r.Answer[0].(*dns.TXT); !ok || strings.Join(txt.Txt, "") != l.version(role) {
		return fmt.Errorf("%w: %s", errForeignServer, r.Answer[0])
	}
	for _, z := range l.Zones {
		if _, err := soaSerial(addr, z); err != nil {
			return err
		}
		if l.opts.Signed {
			if err := signed(addr, z); err != nil {
				return err
			}
		}
	}
	return nil
}

// signed checks that addr serves zone signed: a DNSKEY RRset, and an RRSIG
// over the SOA. A validating resolver that reaches a server before it
// signed (or, for the secondary, before it transferred the signed zone)
// would cache a bogus answer.
func signed(addr, zone string) error {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	for _, qt := range []uint16{dns.TypeSOA, dns.TypeDNSKEY} {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(zone), qt)
		q.RecursionDesired = false
		q.SetEdns0(4096, true)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			return err
		}
		var data, sig bool
		for _, rr := range r.Answer {
			switch x := rr.(type) {
			case *dns.RRSIG:
				sig = sig || x.TypeCovered == qt
			default:
				data = data || rr.Header().Rrtype == qt
			}
		}
		if !data || !sig {
			return fmt.Errorf("%s %s at %s: not signed yet (records %v, RRSIG %v)", zone, dns.TypeToString[qt], addr, data, sig)
		}
	}
	return nil
}

// soaSerial asks addr over TCP for zone's SOA and returns its serial; the
// answer must be authoritative.
func soaSerial(addr, zone string) (uint32, error) {
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

// Serial returns the SOA serial of zone served at addr ("IP:PORT"), queried
// over TCP; it fails t when the server does not answer authoritatively.
func (l *Lab) Serial(t testing.TB, addr, zone string) uint32 {
	t.Helper()
	s, err := soaSerial(addr, zone)
	if err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	return s
}

// WaitSerial polls addr ("IP:PORT") every 20 ms until it serves zone with a
// SOA serial equal to or newer than serial (RFC 1982 arithmetic), and fails t
// after timeout naming the last serial seen.
func (l *Lab) WaitSerial(t testing.TB, addr, zone string, serial uint32, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		s, err := soaSerial(addr, zone)
		if err == nil && int32(s-serial) >= 0 {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("serial %d", s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindlab: %s at %s did not reach serial %d within %v: last %s", zone, addr, serial, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Rndc runs `rndc <args>` against the primary ("primary") or the secondary
// ("secondary") and returns its output; it fails t when rndc fails.
func (l *Lab) Rndc(t testing.TB, role string, args ...string) string {
	t.Helper()
	out, err := l.rndc(role, args...)
	if err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	return out
}

func (l *Lab) rndc(role string, args ...string) (string, error) {
	addr := PrimaryIP
	if role == "secondary" {
		addr = SecondaryIP
	}
	full := append([]string{"-c", filepath.Join(l.Dir, "rndc.conf"), "-s", addr, "-p", strconv.Itoa(l.controlPort)}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rndc", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rndc %s (%s): %w: %s", strings.Join(args, " "), role, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// BlockTransfers makes the secondary lag: the primary is reconfigured with
// `notify no; allow-transfer { none; };` (rndc reconfig), so the secondary
// keeps serving the serial it has while updates change the primary. The
// secondary's refresh attempts are refused and it keeps its old copy.
func (l *Lab) BlockTransfers(t testing.TB) {
	t.Helper()
	l.setBlocked(t, true)
}

// UnblockTransfers restores NOTIFY and transfers and makes the secondary
// refresh every zone at once (rndc refresh); use WaitSerial to wait for it.
func (l *Lab) UnblockTransfers(t testing.TB) {
	t.Helper()
	l.setBlocked(t, false)
	l.mu.Lock()
	up := l.secondary != nil
	l.mu.Unlock()
	if !up {
		return
	}
	for _, z := range l.Zones {
		l.Rndc(t, "secondary", "refresh", strings.TrimSuffix(z, "."))
	}
}

func (l *Lab) setBlocked(t testing.TB, blocked bool) {
	t.Helper()
	l.mu.Lock()
	l.blocked = blocked
	err := l.writeConfigs()
	l.mu.Unlock()
	if err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	l.Rndc(t, "primary", "reconfig")
}

// StopSecondary stops the secondary named and waits for it to exit: its
// address then refuses connections (an unreachable secondary).
func (l *Lab) StopSecondary(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	s := l.secondary
	l.secondary = nil
	l.mu.Unlock()
	if s != nil {
		s.stop()
	}
}

// StartSecondary starts the secondary again after StopSecondary (same port,
// same zone copies) and waits until it answers every zone's SOA.
func (l *Lab) StartSecondary(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	if l.secondary != nil {
		l.mu.Unlock()
		return
	}
	s, err := l.startServer("secondary", SecondaryIP)
	l.secondary = s
	l.mu.Unlock()
	if err != nil {
		t.Fatalf("bindlab: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.waitReady(ctx, s); err != nil {
		t.Fatalf("bindlab: %v", err)
	}
}

// Nsupdate runs `nsupdate -k KeyFile` against the primary with script on
// stdin. A `server 127.0.0.1 PORT` line is prepended unless script has a
// server line, and `send` is appended unless script has one. It fails t
// with nsupdate's output (which never holds the secret) when nsupdate fails.
func (l *Lab) Nsupdate(t testing.TB, script string) {
	t.Helper()
	if _, err := l.NsupdateKey(l.KeyFile, script); err != nil {
		t.Fatalf("bindlab: %v", err)
	}
}

// NsupdateKey runs `nsupdate -k keyFile` like Nsupdate and returns its
// combined output and an error when nsupdate exits non-zero.
func (l *Lab) NsupdateKey(keyFile, script string) (string, error) {
	var b strings.Builder
	hasServer, hasSend := false, false
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "server" {
			hasServer = true
		}
		if len(f) > 0 && f[0] == "send" {
			hasSend = true
		}
	}
	if !hasServer {
		fmt.Fprintf(&b, "server %s %d\n", PrimaryIP, l.Port)
	}
	b.WriteString(script)
	if !strings.HasSuffix(script, "\n") {
		b.WriteByte('\n')
	}
	if !hasSend {
		b.WriteString("send\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsupdate", "-k", keyFile)
	cmd.Stdin = strings.NewReader(b.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsupdate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// KeySecret returns the base64 secret of the lab key. Tests must never print it.
func (l *Lab) KeySecret() string {
	return Key{Name: l.KeyName, Algorithm: l.KeyAlgorithm, File: l.KeyFile}.Secret()
}

// Key returns the lab key as a Key.
func (l *Lab) Key() Key { return Key{Name: l.KeyName, Algorithm: l.KeyAlgorithm, File: l.KeyFile} }

// Logs returns the paths of the primary's and the secondary's named.log.
func (l *Lab) Logs() (primary, secondary string) {
	return filepath.Join(l.Dir, "primary", "named.log"), filepath.Join(l.Dir, "secondary", "named.log")
}

func (l *Lab) dumpLogs(t testing.TB) {
	for _, role := range []string{"primary", "secondary"} {
		t.Logf("bindlab: last lines of %s named.log:\n%s", role, testenv.Tail(filepath.Join(l.Dir, role, "named.log"), 50))
	}
}

func (l *Lab) stopAll() {
	l.mu.Lock()
	p, s := l.primary, l.secondary
	l.primary, l.secondary = nil, nil
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range []*server{p, s} {
		if srv != nil {
			wg.Add(1)
			go func() { defer wg.Done(); srv.stop() }()
		}
	}
	wg.Wait()
}

// stop sends SIGTERM, waits up to 5 s, then kills.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(terminate)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// tsigKeygen writes `tsig-keygen -a alg name` to path with mode 0600.
func tsigKeygen(path, name, alg string) error {
	out, err := exec.Command("tsig-keygen", "-a", alg, name).Output()
	if err != nil {
		return fmt.Errorf("tsig-keygen -a %s %s: %w", alg, name, err)
	}
	return os.WriteFile(path, out, 0o600)
}

// readSecret returns the quoted secret of the first key in a tsig-keygen file.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "secret"); ok {
			if i, j := strings.IndexByte(rest, '"'), strings.LastIndexByte(rest, '"'); i >= 0 && j > i {
				return rest[i+1 : j], nil
			}
		}
	}
	return "", fmt.Errorf("no secret in %q", path)
}

// freePort returns a port that is free for every network in nets on both
// PrimaryIP and SecondaryIP at the time of the call. It picks at random
// below the kernel's ephemeral range (32768-60999), so that source ports of
// concurrent clients do not collide with it.
func freePort(t testing.TB, nets ...string) int {
	t.Helper()
	for range 200 {
		port := 20000 + mrand.IntN(12000)
		if portFree(port, nets) {
			return port
		}
	}
	t.Fatalf("bindlab: no free port found")
	return 0
}

func portFree(port int, nets []string) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, ip := range []string{PrimaryIP, SecondaryIP} {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		for _, n := range nets {
			switch n {
			case "tcp":
				ln, err := net.Listen("tcp4", addr)
				if err != nil {
					return false
				}
				closers = append(closers, ln)
			case "udp":
				pc, err := net.ListenPacket("udp4", addr)
				if err != nil {
					return false
				}
				closers = append(closers, pc)
			}
		}
	}
	return true
}

var aliasOnce sync.Once
var aliasErr error

// ensureLoopbackAlias makes sure SecondaryIP is an address of lo.
func ensureLoopbackAlias(t testing.TB) {
	t.Helper()
	aliasOnce.Do(func() {
		out, err := exec.Command("ip", "-4", "addr", "show", "dev", "lo").Output()
		if err != nil {
			aliasErr = fmt.Errorf("ip -4 addr show dev lo: %w", err)
			return
		}
		if strings.Contains(string(out), " "+SecondaryIP+"/") {
			return
		}
		if out, err := exec.Command("ip", "addr", "add", SecondaryIP+"/8", "dev", "lo").CombinedOutput(); err != nil {
			// A parallel test package may have added it meanwhile.
			if again, _ := exec.Command("ip", "-4", "addr", "show", "dev", "lo").Output(); strings.Contains(string(again), " "+SecondaryIP+"/") {
				return
			}
			aliasErr = fmt.Errorf("ip addr add %s/8 dev lo: %w: %s", SecondaryIP, err, strings.TrimSpace(string(out)))
		}
	})
	if aliasErr != nil {
		testenv.Missing(t, SecondaryIP+" on lo ("+aliasErr.Error()+"); run as root or `ip addr add 127.0.0.2/8 dev lo`")
	}
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Counters are a server's request counters since it started, from
// `rndc stats`: Requests by opcode ("QUERY", "UPDATE", "NOTIFY") and Queries
// by type ("SOA", "TLSA", "IXFR", …). They include the other server's
// traffic (SOA refresh queries, IXFR, NOTIFY) and bindlab's readiness probes.
type Counters struct {
	Requests map[string]uint64
	Queries  map[string]uint64
	// Server holds the "Name Server Statistics" lines by their text
	// ("requests with TSIG received", "responses sent", …).
	Server map[string]uint64
}

// Counters dumps and returns the request counters of the primary
// ("primary") or the secondary ("secondary"); it fails t on error.
func (l *Lab) Counters(t testing.TB, role string) Counters {
	t.Helper()
	stats := filepath.Join(l.Dir, role, "named.stats")
	_ = os.Remove(stats)
	l.Rndc(t, role, "stats")
	c := Counters{Requests: map[string]uint64{}, Queries: map[string]uint64{}, Server: map[string]uint64{}}
	var section map[string]uint64
	server := false
	deadline := time.Now().Add(5 * time.Second)
	var data []byte
	for {
		var err error
		data, err = os.ReadFile(stats)
		if err == nil && bytes.Contains(data, []byte("--- Statistics Dump ---")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindlab: rndc stats wrote no complete dump to %s", stats)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "++ Incoming Requests ++"):
			section = c.Requests
			continue
		case strings.HasPrefix(line, "++ Incoming Queries ++"):
			section = c.Queries
			continue
		case strings.HasPrefix(line, "++ Name Server Statistics ++"):
			section = nil
			server = true
			continue
		case strings.HasPrefix(line, "++"):
			section, server = nil, false
			continue
		case strings.HasPrefix(line, "["):
			section = nil
			continue
		}
		f := strings.Fields(line)
		if server && len(f) > 1 {
			if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				c.Server[strings.Join(f[1:], " ")] += n
			}
			continue
		}
		if section != nil && len(f) == 2 {
			if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				section[f[1]] = n
			}
		}
	}
	return c
}
