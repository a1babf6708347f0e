package cliapp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/desecfake"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

func libdnsRec(b byte) tlsa.Record {
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{b}, 32)}
}

func libdnsAdd(owner string, r tlsa.Record) dnsupdate.Change {
	return dnsupdate.Change{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: owner, TTL: 60, Record: r}}
}

func libdnsRemove(owner string, r tlsa.Record) dnsupdate.Change {
	return dnsupdate.Change{Op: dnsupdate.Remove, RR: dnsupdate.RR{Owner: owner, Record: r}}
}

func exitOf(err error) int {
	var e *Error
	if errors.As(Classify(err), &e) {
		return e.Code
	}
	return 0
}

// type = "libdns", name = "rfc2136" end to end against the lab's BIND:
// built by NewPublisher from the same settings as type = "rfc2136" (the
// TSIG key from key_file), add a pair, remove one, records of others kept,
// a rerun sends nothing; each error class with its exit code and no secret.
func TestLibdnsRFC2136AgainstBIND(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{ExtraKeys: []bindlab.ExtraKey{{
		Name:   "narrow",
		Grants: []string{`grant "narrow." name _25._tcp.mail.example.test. TLSA;`},
	}}})
	const owner = "_25._tcp.mail.example.test."
	cfg := func(keyFile string) *config.Provider {
		return &config.Provider{Name: "lab", Type: "libdns", LibdnsName: "rfc2136", Server: l.Primary, QueryServer: l.Primary, KeyFile: keyFile, Timeout: 5}
	}
	pub, err := NewPublisher(cfg(l.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if s := (pub.(*dnsupdate.Libdns)).String(); strings.Contains(s, l.KeySecret()) || s != `libdns{name="rfc2136"}` {
		t.Fatalf("String() = %q", s)
	}
	ctx := t.Context()
	other := tlsa.Record{Usage: 3, Selector: 0, MatchingType: 1, Data: bytes.Repeat([]byte{0xf0}, 32)}
	l.Nsupdate(t, "update add "+owner+" 300 IN TLSA "+other.String())
	a, b := libdnsRec(0xa1), libdnsRec(0xb2)
	check := func(want ...tlsa.Record) {
		t.Helper()
		got, err := pub.Records(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g.Record.Equal(w)
			}
			if !found {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	if z, err := pub.FindZone(ctx, owner); err != nil || z != "example.test." {
		t.Fatalf("FindZone: %q, %v", z, err)
	}
	if err := pub.Apply(ctx, []dnsupdate.Change{libdnsAdd(owner, a), libdnsAdd(owner, b)}); err != nil {
		t.Fatal(err)
	}
	check(other, a, b)
	serial := l.Serial(t, l.Primary, "example.test.")
	if err := pub.Apply(ctx, []dnsupdate.Change{libdnsAdd(owner, a), libdnsAdd(owner, b)}); err != nil {
		t.Fatal(err)
	}
	if s := l.Serial(t, l.Primary, "example.test."); s != serial {
		t.Errorf("rerun changed the serial %d → %d: an UPDATE was sent", serial, s)
	}
	if err := pub.Apply(ctx, []dnsupdate.Change{libdnsAdd(owner, libdnsRec(0xc3)), libdnsRemove(owner, a)}); err != nil {
		t.Fatal(err)
	}
	check(other, b, libdnsRec(0xc3))

	// Error classes. A wrong secret is seen by the signed read first:
	// danehook's own client names BADSIG (exit 3).
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong.key")
	wrongSecret := base64.StdEncoding.EncodeToString([]byte("this is not the secret of the key"))
	if err := os.WriteFile(wrong, []byte("key \""+l.KeyName+"\" {\n\talgorithm hmac-sha256;\n\tsecret \""+wrongSecret+"\";\n};\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := NewPublisher(cfg(wrong))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Apply(ctx, []dnsupdate.Change{libdnsAdd(owner, libdnsRec(0xd4))})
	if exitOf(err) != ExitTSIG || !strings.Contains(err.Error(), "BADSIG") || strings.Contains(err.Error(), wrongSecret) || strings.Contains(err.Error(), l.KeySecret()) {
		t.Errorf("wrong secret: got exit %d, %v; want 3 naming BADSIG, no secret", exitOf(err), err)
	}
	// The libdns call itself with a wrong secret, behind an unsigned read:
	// classified auth (exit 3) from libdns/rfc2136's error or the diagnosis.
	lb := bad.(*dnsupdate.Libdns)
	lb.Reader = &dnsupdate.RFC2136{Server: l.Primary, Timeout: 5 * time.Second}
	err = lb.Apply(ctx, []dnsupdate.Change{libdnsAdd(owner, libdnsRec(0xd4))})
	if exitOf(err) != ExitTSIG || strings.Contains(err.Error(), wrongSecret) {
		t.Errorf("libdns call with a wrong secret: got exit %d, %v; want 3, no secret", exitOf(err), err)
	}
	t.Logf("libdns/rfc2136 with a wrong secret: %v", err)
	// Refused by update-policy: exit 4.
	narrow, err := NewPublisher(cfg(l.Keys["narrow."].File))
	if err != nil {
		t.Fatal(err)
	}
	err = narrow.Apply(ctx, []dnsupdate.Change{libdnsAdd("_25._tcp.other.example.test.", libdnsRec(0xe5))})
	if exitOf(err) != ExitRefused || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("refused: got exit %d, %v; want 4 naming REFUSED", exitOf(err), err)
	}
	// prerequisites cannot be honoured by libdns/rfc2136: refused at build time.
	p := cfg(l.KeyFile)
	p.Prerequisites = true
	if _, err := NewPublisher(p); err == nil || !strings.Contains(err.Error(), "prerequisites") {
		t.Errorf("prerequisites = true: got %v, want refused", err)
	}
}

// type = "libdns", name = "desec" as configured: the token from a 0600 file
// or the default variable DESEC_TOKEN, errors mapped to exit codes, the
// token never in an error.
func TestLibdnsDesecWiring(t *testing.T) {
	const token = "desecTok-SECRET-wiring-31"
	f := desecfake.New(t, token)
	f.AddDomain("example.com")
	f.Intercept(t)
	addr := apidns.Serve(t, f.DNS)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "desec.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const owner = "_25._tcp.mail.example.com."
	p := &config.Provider{Name: "desec", Type: "libdns", LibdnsName: "desec", QueryServer: addr, APITokenFile: tokenFile, Timeout: 5}
	pub, err := NewPublisher(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Apply(t.Context(), []dnsupdate.Change{libdnsAdd(owner, libdnsRec(1))}); err != nil {
		t.Fatal(err)
	}
	if got, err := pub.Records(t.Context(), owner); err != nil || len(got) != 1 {
		t.Fatalf("Records: %v, %v", got, err)
	}
	// From the environment, wrong: exit 3, the token not in the message.
	t.Setenv("DESEC_TOKEN", "wrong-"+token)
	p2 := &config.Provider{Name: "desec", Type: "libdns", LibdnsName: "desec", QueryServer: addr, Timeout: 5}
	pub2, err := NewPublisher(p2)
	if err != nil {
		t.Fatal(err)
	}
	err = pub2.Apply(t.Context(), []dnsupdate.Change{libdnsAdd(owner, libdnsRec(2))})
	if exitOf(err) != ExitTSIG || strings.Contains(err.Error(), token) {
		t.Errorf("got exit %d, %v; want 3 without the token", exitOf(err), err)
	}
	// Setup errors.
	t.Setenv("DESEC_TOKEN", "")
	for _, tc := range []struct {
		p    config.Provider
		want string
	}{
		{config.Provider{Name: "d", Type: "libdns", LibdnsName: "desec", QueryServer: addr}, "DESEC_TOKEN is unset or empty"},
		{config.Provider{Name: "d", Type: "libdns", LibdnsName: "route66", QueryServer: addr}, `libdns provider "route66" is not compiled in`},
		{config.Provider{Name: "d", Type: "libdns", LibdnsName: "desec", QueryServer: addr, APITokenFile: tokenFile, Settings: map[string]any{"colour": "red"}}, `setting "colour" is unknown to libdns provider "desec"`},
	} {
		if _, err := NewPublisher(&tc.p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `provider "d"`) {
			t.Errorf("got %v, want %q naming the provider", err, tc.want)
		}
	}
	open := filepath.Join(dir, "open.token")
	if err := os.WriteFile(open, []byte(token), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewPublisher(&config.Provider{Name: "d", Type: "libdns", LibdnsName: "desec", QueryServer: addr, APITokenFile: open})
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("token file readable by others: got %v, want refused without the token", err)
	}
}
