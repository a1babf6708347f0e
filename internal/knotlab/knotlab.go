// Package knotlab starts a real Knot DNS primary (127.0.0.1:PORT) and a Knot
// DNS secondary (127.0.0.2:PORT) on loopback for tests, as an
// internal/dnslab.Lab: the zones updatable with TSIG-signed RFC 2136
// UPDATEs, NOTIFY + IXFR to the secondary signed with the lab key, and with
// Options.Signed automatic DNSSEC signing on the primary (`dnssec-signing:
// on`, one ECDSAP256SHA256 CSK, NSEC) whose signed zone the secondary
// transfers.
//
// Each Start has its own directory under t.TempDir(), port, keys, KASP
// database and logs; knotd runs in the foreground as a child of the test
// and is stopped by t.Cleanup.
//
// Rights (knot.conf ACLs, https://www.knot-dns.cz/docs/3.2/html/reference.html#acl-section):
// the lab key and every ExtraKey with Zone get `action: update`; an ExtraKey
// with Owners gets `action: update`, `update-type: [TLSA]`,
// `update-owner: name`, `update-owner-match: equal` and its owners as
// `update-owner-name`; an ExtraKey with neither gets only `action: query`
// (Knot answers a TSIG-signed request with a key that no ACL of the zone
// lists BADKEY, even a query, so a key "known but granted nothing" must be
// in an ACL).
package knotlab

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

// Start writes the configs and zone files, starts both knotd processes,
// waits until both serve every zone (signed and in sync with Options.Signed;
// a few seconds at most, 20 s at worst) and registers the cleanup that stops
// them. It needs knotd (testenv.Require) and 127.0.0.2 on lo.
func Start(t testing.TB, opts dnslab.Options) *dnslab.Lab {
	t.Helper()
	testenv.Require(t, "knotd", "nsupdate")
	dnslab.RequireLoopbackAlias(t)
	opts = dnslab.Normalize(opts)
	l := &dnslab.Lab{
		Product: "Knot", SecondaryProduct: "Knot", Version: version(),
		Dir: t.TempDir(), Zones: opts.Zones, TTL: opts.TTL, Signed: opts.Signed,
		Keys: map[string]dnslab.Key{}, OwnerGrants: true,
	}
	var err error
	if l.Key, err = dnslab.NewKey(filepath.Join(l.Dir, "key.conf"), dnslab.DefaultKeyName, "hmac-sha256"); err != nil {
		t.Fatalf("knotlab: %v", err)
	}
	for i, ek := range opts.ExtraKeys {
		k, err := dnslab.NewKey(filepath.Join(l.Dir, fmt.Sprintf("extra-key-%d.conf", i)), ek.Name, ek.Algorithm)
		if err != nil {
			t.Fatalf("knotlab: %v", err)
		}
		l.Keys[k.Name] = k
	}
	for _, role := range []string{"primary", "secondary"} {
		if err := os.MkdirAll(filepath.Join(l.Dir, role), 0o700); err != nil {
			t.Fatalf("knotlab: %v", err)
		}
		l.Logs = append(l.Logs, filepath.Join(l.Dir, role, "knotd.log"))
	}
	for _, z := range l.Zones {
		if err := os.WriteFile(filepath.Join(l.Dir, "primary", strings.TrimSuffix(z, ".")+".zone"), []byte(dnslab.ZoneText(z, l.TTL)), 0o600); err != nil {
			t.Fatalf("knotlab: %v", err)
		}
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
	for range 5 {
		l.Port = dnslab.FreePort(t)
		l.Primary = net.JoinHostPort(dnslab.PrimaryIP, strconv.Itoa(l.Port))
		l.Secondary = net.JoinHostPort(dnslab.SecondaryIP, strconv.Itoa(l.Port))
		procs, lastErr = start(l, opts, id)
		if lastErr == nil {
			return l
		}
		for _, p := range procs {
			p.Stop()
		}
		procs = nil
	}
	t.Fatalf("knotlab: start: %v", lastErr)
	return nil
}

func version() string {
	out, err := exec.Command("knotd", "-V").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

func start(l *dnslab.Lab, opts dnslab.Options, id string) ([]*dnslab.Process, error) {
	var procs []*dnslab.Process
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, role := range []string{"primary", "secondary"} {
		addr, peer := dnslab.PrimaryIP, dnslab.SecondaryIP
		if role == "secondary" {
			addr, peer = peer, addr
		}
		dir := filepath.Join(l.Dir, role)
		conf := filepath.Join(dir, "knot.conf")
		ver := "knotlab-" + id + "-" + role
		var b bytes.Buffer
		if err := confTemplate.Execute(&b, map[string]any{
			"Role": role, "Dir": dir, "Addr": addr, "Peer": peer, "Port": l.Port, "Version": ver,
			"Key": l.Key, "Extra": extraKeys(l, opts), "Zones": l.Zones, "Signed": l.Signed,
		}); err != nil {
			return procs, err
		}
		if err := os.WriteFile(conf, b.Bytes(), 0o600); err != nil {
			return procs, err
		}
		p, err := dnslab.StartProcess("knotd ("+role+")", dir, filepath.Join(dir, "knotd.log"), "knotd", "-c", conf)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
		if err := dnslab.WaitReady(ctx, p, net.JoinHostPort(addr, strconv.Itoa(l.Port)), ver, l.Zones, l.Signed); err != nil {
			return procs, err
		}
	}
	return procs, l.WaitInSync(ctx)
}

type extraKey struct {
	dnslab.Key
	Zone   bool
	Owners []string
}

func extraKeys(l *dnslab.Lab, opts dnslab.Options) []extraKey {
	var out []extraKey
	for _, ek := range opts.ExtraKeys {
		out = append(out, extraKey{Key: l.Keys[ek.Name], Zone: ek.Zone, Owners: ek.Owners})
	}
	return out
}

// confTemplate is knot.conf for either role. Logging goes to stderr (the
// process log); the zone file is never rewritten (zonefile-sync: -1), the
// journal keeps the changes.
var confTemplate = template.Must(template.New("knot.conf").Parse(`# generated by knotlab ({{.Role}})
server:
    rundir: "{{.Dir}}"
    listen: {{.Addr}}@{{.Port}}
    version: "{{.Version}}"
    identity: "{{.Version}}"

database:
    storage: "{{.Dir}}"

log:
  - target: stderr
    any: info

key:
  - id: {{.Key.Name}}
    algorithm: {{.Key.Algorithm}}
    secret: {{.Key.Secret}}
{{- range .Extra}}
  - id: {{.Name}}
    algorithm: {{.Algorithm}}
    secret: {{.Secret}}
{{- end}}

remote:
  - id: peer
    address: {{.Peer}}@{{.Port}}
    via: {{.Addr}}
    key: {{.Key.Name}}

acl:
{{- if eq .Role "primary"}}
  - id: lab_update
    key: {{.Key.Name}}
    action: update
  - id: lab_transfer
    key: {{.Key.Name}}
    action: transfer
{{- range $i, $k := .Extra}}
{{- if $k.Zone}}
  - id: extra_{{$i}}
    key: {{$k.Name}}
    action: update
{{- else if $k.Owners}}
  - id: extra_{{$i}}
    key: {{$k.Name}}
    action: update
    update-type: [TLSA]
    update-owner: name
    update-owner-match: equal
    update-owner-name: [{{range $j, $o := $k.Owners}}{{if $j}}, {{end}}{{$o}}{{end}}]
{{- else}}
  - id: extra_{{$i}}
    key: {{$k.Name}}
    action: query
{{- end}}
{{- end}}
{{- else}}
  - id: lab_notify
    key: {{.Key.Name}}
    action: notify
{{- end}}
{{- if .Signed}}

policy:
  - id: lab
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
{{- end}}

template:
  - id: default
    storage: "{{.Dir}}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    semantic-checks: off
{{- if eq .Role "primary"}}
    notify: peer
    acl: [lab_update, lab_transfer{{range $i, $k := .Extra}}, extra_{{$i}}{{end}}]
{{- if .Signed}}
    dnssec-signing: on
    dnssec-policy: lab
{{- end}}
{{- else}}
    master: peer
    acl: [lab_notify]
{{- end}}

zone:
{{- range .Zones}}
  - domain: {{.}}
{{- end}}
`))
