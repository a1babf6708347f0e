package libdnsprov

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// rec is a fresh 3 1 1 record (random SHA-256-sized data).
func rec(t testing.TB) tlsa.Record {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: b}
}

func add(owner string, ttl uint32, r tlsa.Record) dnsupdate.Change {
	return dnsupdate.Change{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: owner, TTL: ttl, Record: r}}
}

func remove(owner string, r tlsa.Record) dnsupdate.Change {
	return dnsupdate.Change{Op: dnsupdate.Remove, RR: dnsupdate.RR{Owner: owner, TTL: 0, Record: r}}
}

// build wires provider name as cmd/internal/cliapp does: the libdns
// provider from its spec, reads by direct query to dnsAddr.
func build(t testing.TB, name, token, dnsAddr string, timeout time.Duration) *dnsupdate.Libdns {
	t.Helper()
	spec, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.New(Settings{Token: token, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return &dnsupdate.Libdns{Name: name, Provider: p, Classify: spec.Classify, Timeout: timeout, Secrets: []string{token},
		Reader: &dnsupdate.RFC2136{Server: dnsAddr, Timeout: 2 * time.Second}}
}

// served returns the records the authoritative server serves at owner.
func served(t testing.TB, l *dnsupdate.Libdns, owner string) []dnsupdate.RR {
	t.Helper()
	rrs, err := l.Records(t.Context(), owner)
	if err != nil {
		t.Fatalf("Records(%s): %v", owner, err)
	}
	return rrs
}

// assertServed checks the records served at owner are exactly want.
func assertServed(t testing.TB, l *dnsupdate.Libdns, owner string, want ...tlsa.Record) {
	t.Helper()
	got := served(t, l, owner)
	var g, w []string
	for _, rr := range got {
		g = append(g, rr.Record.String())
	}
	for _, r := range want {
		w = append(w, r.String())
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("records at %s:\ngot  %q\nwant %q", owner, g, w)
	}
}

// assertClass checks err has class and leaks no secret.
func assertClass(t testing.TB, err, class error, secrets ...string) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("got %v, want class %v", err, class)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error contains a secret: %v", err)
		}
	}
}

var _ = apidns.Serve
