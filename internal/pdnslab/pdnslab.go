// Package pdnslab starts a real PowerDNS Authoritative primary
// (127.0.0.1:PORT) and a PowerDNS secondary (127.0.0.2:PORT) on loopback
// for tests, as an internal/dnslab.Lab. Each server has its own sqlite3
// database (the gsqlite3 backend, the one the Debian package
// pdns-backend-sqlite3 ships) and is set up with pdnsutil the way an
// operator does it:
//
//	pdnsutil load-zone example.test. example.test.zone
//	pdnsutil set-kind example.test. primary
//	pdnsutil import-tsig-key danehook-key. hmac-sha256 <secret>
//	pdnsutil set-meta example.test. TSIG-ALLOW-DNSUPDATE danehook-key. [<extra keys with Zone>]
//	pdnsutil set-meta example.test. ALLOW-DNSUPDATE-FROM 127.0.0.0/8
//	pdnsutil set-meta example.test. NOTIFY-DNSUPDATE 1
//	pdnsutil set-meta example.test. SOA-EDIT-DNSUPDATE INCREASE
//	pdnsutil set-meta example.test. TSIG-ALLOW-AXFR danehook-key.
//	pdnsutil secure-zone example.test.   (Options.Signed; then rectify-zone)
//
// with `dnsupdate=yes` and an empty global `allow-dnsupdate-from` in
// pdns.conf (https://doc.powerdns.com/authoritative/dnsupdate.html), and on
// the secondary `pdnsutil create-secondary-zone example.test.
// 127.0.0.1:PORT` with AXFR-MASTER-TSIG. The primary NOTIFYs the secondary
// after every UPDATE (NOTIFY-DNSUPDATE, also-notify); signed zones are
// signed live by the primary and reach the secondary presigned.
//
// PowerDNS grants keys per zone only (TSIG-ALLOW-DNSUPDATE): an ExtraKey
// with Owners fails the test (per-owner rules need a Lua
// lua-dnsupdate-policy-script, which turns the metadata checks off). An
// ExtraKey with neither Zone nor Owners is imported but not listed in
// TSIG-ALLOW-DNSUPDATE.
package pdnslab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/danehook/danehook/internal/dnslab"
	"github.com/danehook/danehook/internal/testenv"
)

// schema is the gsqlite3 schema shipped by pdns-backend-sqlite3.
const schema = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"

// Start creates both databases with pdnsutil, starts both pdns_server
// processes, waits until both serve every zone (signed and in sync with
// Options.Signed) and registers the cleanup that stops them. It needs
// pdns_server, pdnsutil, sqlite3 and the gsqlite3 schema (a missing one
// skips, or fails under CI=true) and 127.0.0.2 on lo.
func Start(t testing.TB, opts dnslab.Options) *dnslab.Lab {
	t.Helper()
	testenv.Require(t, "pdns_server", "pdnsutil", "sqlite3", "nsupdate")
	if _, err := os.Stat(schema); err != nil {
		testenv.Missing(t, schema+" (package pdns-backend-sqlite3); run scripts/install-deps.sh")
	}
	dnslab.RequireLoopbackAlias(t)
	opts = dnslab.Normalize(opts)
	for _, ek := range opts.ExtraKeys {
		if len(ek.Owners) > 0 && !ek.Zone {
			t.Fatalf("pdnslab: key %q: PowerDNS grants TSIG keys per zone (TSIG-ALLOW-DNSUPDATE), not per owner", ek.Name)
		}
	}
	l := &dnslab.Lab{
		Product: "PowerDNS", SecondaryProduct: "PowerDNS", Version: version(),
		Dir: t.TempDir(), Zones: opts.Zones, TTL: opts.TTL, Signed: opts.Signed,
		Keys: map[string]dnslab.Key{},
	}
	var err error
	if l.Key, err = dnslab.NewKey(filepath.Join(l.Dir, "key.conf"), dnslab.DefaultKeyName, "hmac-sha256"); err != nil {
		t.Fatalf("pdnslab: %v", err)
	}
	for i, ek := range opts.ExtraKeys {
		k, err := dnslab.NewKey(filepath.Join(l.Dir, fmt.Sprintf("extra-key-%d.conf", i)), ek.Name, ek.Algorithm)
		if err != nil {
			t.Fatalf("pdnslab: %v", err)
		}
		l.Keys[k.Name] = k
	}
	for _, role := range []string{"primary", "secondary"} {
		if err := os.MkdirAll(filepath.Join(l.Dir, role), 0o700); err != nil {
			t.Fatalf("pdnslab: %v", err)
		}
		l.Logs = append(l.Logs, filepath.Join(l.Dir, role, "pdns.log"))
	}
	var procs []*dnslab.Process
	t.Cleanup(func() {
		l.DumpLogs(t)
		for _, p := range procs {
			p.Stop()
		}
	})
	id := dnslab.RandomID()
	var lastErr error
	for attempt := range 5 {
		l.Port = dnslab.FreePort(t)
		l.Primary = net.JoinHostPort(dnslab.PrimaryIP, strconv.Itoa(l.Port))
		l.Secondary = net.JoinHostPort(dnslab.SecondaryIP, strconv.Itoa(l.Port))
		if err := writeConfigs(l, id); err != nil {
			t.Fatalf("pdnslab: %v", err)
		}
		if attempt == 0 {
			if err := setup(l, opts); err != nil {
				t.Fatalf("pdnslab: %v", err)
			}
		} else {
			// The secondary zones name the primary's port.
			for _, z := range l.Zones {
				if _, err := pdnsutil(l, "secondary", "change-secondary-zone-primary", z, l.Primary); err != nil {
					t.Fatalf("pdnslab: %v", err)
				}
			}
		}
		procs, lastErr = start(l, id)
		if lastErr == nil {
			return l
		}
		for _, p := range procs {
			p.Stop()
		}
		procs = nil
	}
	t.Fatalf("pdnslab: start: %v", lastErr)
	return nil
}

func version() string {
	out, _ := exec.Command("pdns_server", "--version").CombinedOutput()
	for _, f := range strings.Fields(string(out)) {
		if len(f) > 0 && f[0] >= '0' && f[0] <= '9' && strings.Count(f, ".") == 2 {
			return f
		}
	}
	return ""
}

var confTemplate = template.Must(template.New("pdns.conf").Parse(`# generated by pdnslab ({{.Role}})
launch=gsqlite3
gsqlite3-database={{.Dir}}/pdns.sqlite3
gsqlite3-dnssec=yes
local-address={{.Addr}}
local-port={{.Port}}
query-local-address={{.Addr}}
socket-dir={{.Dir}}
daemon=no
guardian=no
disable-syslog=yes
log-timestamp=yes
loglevel=6
version-string={{.Version}}
webserver=no
api=no
distributor-threads=1
receiver-threads=1
signing-threads=1
xfr-cycle-interval=1
{{- if eq .Role "primary"}}
primary=yes
dnsupdate=yes
allow-dnsupdate-from=
only-notify=
also-notify={{.Peer}}:{{.Port}}
{{- else}}
secondary=yes
allow-notify-from={{.Peer}}/32
{{- end}}
`))

func writeConfigs(l *dnslab.Lab, id string) error {
	for _, role := range []string{"primary", "secondary"} {
		addr, peer := dnslab.PrimaryIP, dnslab.SecondaryIP
		if role == "secondary" {
			addr, peer = peer, addr
		}
		dir := filepath.Join(l.Dir, role)
		var b bytes.Buffer
		if err := confTemplate.Execute(&b, map[string]any{
			"Role": role, "Dir": dir, "Addr": addr, "Peer": peer, "Port": l.Port, "Version": "pdnslab-" + id + "-" + role,
		}); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "pdns.conf"), b.Bytes(), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// pdnsutil runs pdnsutil with role's configuration.
func pdnsutil(l *dnslab.Lab, role string, args ...string) (string, error) {
	dir := filepath.Join(l.Dir, role)
	return dnslab.Run(dir, append([]string{"pdnsutil", "--config-dir=" + dir}, args...)...)
}

// setup creates both databases, loads the zones on the primary and
// creates them as secondary zones on the secondary.
func setup(l *dnslab.Lab, opts dnslab.Options) error {
	for _, role := range []string{"primary", "secondary"} {
		db := filepath.Join(l.Dir, role, "pdns.sqlite3")
		cmd := exec.Command("sqlite3", db)
		f, err := os.Open(schema)
		if err != nil {
			return err
		}
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			return fmt.Errorf("sqlite3 %s < %s: %w: %s", db, schema, err, out)
		}
	}
	updaters := []string{l.Key.Name}
	for _, k := range append([]dnslab.Key{l.Key}, keysOf(l, opts)...) {
		if _, err := pdnsutil(l, "primary", "import-tsig-key", k.Name, k.Algorithm, k.Secret); err != nil {
			return fmt.Errorf("import-tsig-key %s: %w", k.Name, err)
		}
	}
	for _, ek := range opts.ExtraKeys {
		if ek.Zone {
			updaters = append(updaters, ek.Name)
		}
	}
	if _, err := pdnsutil(l, "secondary", "import-tsig-key", l.Key.Name, l.Key.Algorithm, l.Key.Secret); err != nil {
		return fmt.Errorf("import-tsig-key on the secondary: %w", err)
	}
	for _, z := range l.Zones {
		file := filepath.Join(l.Dir, "primary", strings.TrimSuffix(z, ".")+".zone")
		if err := os.WriteFile(file, []byte(dnslab.ZoneText(z, l.TTL)), 0o600); err != nil {
			return err
		}
		steps := [][]string{
			{"load-zone", z, file},
			{"set-kind", z, "primary"},
			append([]string{"set-meta", z, "TSIG-ALLOW-DNSUPDATE"}, updaters...),
			{"set-meta", z, "ALLOW-DNSUPDATE-FROM", "127.0.0.0/8"},
			{"set-meta", z, "NOTIFY-DNSUPDATE", "1"},
			{"set-meta", z, "SOA-EDIT-DNSUPDATE", "INCREASE"},
			{"set-meta", z, "TSIG-ALLOW-AXFR", l.Key.Name},
		}
		if l.Signed {
			steps = append(steps, []string{"secure-zone", z}, []string{"rectify-zone", z})
		}
		for _, s := range steps {
			if _, err := pdnsutil(l, "primary", s...); err != nil {
				return err
			}
		}
		for _, s := range [][]string{
			{"create-secondary-zone", z, l.Primary},
			{"set-meta", z, "AXFR-MASTER-TSIG", l.Key.Name},
		} {
			if _, err := pdnsutil(l, "secondary", s...); err != nil {
				return err
			}
		}
	}
	return nil
}

func keysOf(l *dnslab.Lab, opts dnslab.Options) []dnslab.Key {
	var out []dnslab.Key
	for _, ek := range opts.ExtraKeys {
		out = append(out, l.Keys[ek.Name])
	}
	return out
}

func start(l *dnslab.Lab, id string) ([]*dnslab.Process, error) {
	var procs []*dnslab.Process
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, role := range []string{"primary", "secondary"} {
		addr := dnslab.PrimaryIP
		if role == "secondary" {
			addr = dnslab.SecondaryIP
		}
		dir := filepath.Join(l.Dir, role)
		p, err := dnslab.StartProcess("pdns_server ("+role+")", dir, filepath.Join(dir, "pdns.log"),
			"pdns_server", "--config-dir="+dir)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
		if role == "secondary" {
			// A fresh secondary transfers at its first check; the primary's
			// NOTIFY went out before it listened.
			for _, z := range l.Zones {
				_, _ = dnslab.Run(dir, "pdns_control", "--config-dir="+dir, "retrieve", z)
			}
		}
		if err := dnslab.WaitReady(ctx, p, net.JoinHostPort(addr, strconv.Itoa(l.Port)), "pdnslab-"+id+"-"+role, l.Zones, l.Signed); err != nil {
			return procs, err
		}
	}
	return procs, l.WaitInSync(ctx)
}
