package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
state_dir = "/tmp/danehook-state"

[postfix]
config_dir = "/etc/postfix"

[provider.bind]
type = "rfc2136"
server = "127.0.0.1:5353"
key_file = "/etc/danehook/tsig.key"

[provider.cf]
type = "cloudflare"
api_token_file = "/etc/danehook/cf.token"

[lineage.mail]
hosts = ["mail.example.test"]
provider = "bind"
chain_file = "/etc/postfix/danehook/mail-ecdsa.pem"
endpoints = ["127.0.0.1:25"]

[lineage.mx2]
hosts = ["mx2.example.test"]
ports = [25, 465]
usages = ["3 1 1", "2 1 1"]
ttl = 60
provider = "cf"
chain_file = "/etc/postfix/danehook/mx2.pem"
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse("danehook.toml", []byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m := c.Lineages["mail"]
	if m.Name != "mail" || m.TTL != DefaultTTL || len(m.Ports) != 1 || m.Ports[0] != 25 || m.Usages[0] != "3 1 1" {
		t.Errorf("defaults not applied: %+v", m)
	}
	mx2 := c.Lineages["mx2"]
	if mx2.TA != "issuer" {
		t.Errorf("2 1 1 without ta: TA = %q, want issuer", mx2.TA)
	}
	c3, err := Parse("x.toml", []byte(strings.Replace(good, "ttl = 60", "ttl = 60\nta = \"issuer-set\"\nissuer_set = \"/etc/danehook/le/\"", 1)))
	if err != nil {
		t.Fatalf("issuer-set: %v", err)
	}
	if l := c3.Lineages["mx2"]; l.TA != TAIssuerSet || l.IssuerSet != "/etc/danehook/le/" {
		t.Errorf("issuer-set lineage = ta %q issuer_set %q", l.TA, l.IssuerSet)
	}
	if p := c.Providers["bind"]; p.QueryServer != "127.0.0.1:5353" || p.NameserverPort != 53 || p.Timeout != 5 {
		t.Errorf("provider defaults not applied: %+v", p)
	}
	c2, err := Parse("x.toml", []byte(strings.Replace(good, "api_token_file = \"/etc/danehook/cf.token\"", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if p := c2.Providers["cf"]; p.APITokenEnv != "CLOUDFLARE_API_TOKEN" {
		t.Errorf("cloudflare token env default = %q, want CLOUDFLARE_API_TOKEN", p.APITokenEnv)
	}
	if got := strings.Join(c.LineageNames(), ","); got != "mail,mx2" {
		t.Errorf("LineageNames = %q", got)
	}
	cz, err := Parse("x.toml", []byte(strings.Replace(good, "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\"example.test.\", \"sub.example.test\"]", 1)))
	if err != nil {
		t.Fatalf("zones: %v", err)
	}
	if z := cz.Providers["bind"].Zones; len(z) != 2 || z[1] != "sub.example.test" {
		t.Errorf("zones = %q", z)
	}
	t.Setenv(EnvStateDir, "/x")
	if c.State() != "/x" {
		t.Errorf("State() ignores %s", EnvStateDir)
	}
}

func TestErrorsNameFileLineAndSetting(t *testing.T) {
	tests := []struct {
		name, edit, from string
		lineOf           string // the line the error must point at ("" = any)
		want             string
	}{
		{"unknown key", "provider = \"bind\"", "provider = \"bind\"\nhostz = [\"x\"]", "hostz", "lineage.mail.hostz: unknown setting"},
		{"bad usage", "provider = \"cf\"", "provider = \"cf\"\nusages = [\"3 0 1\"]", "usages = [\"3 0 1\"]", "lineage.mx2.usages"},
		{"missing provider table", "provider = \"cf\"", "provider = \"nope\"", "provider = \"nope\"", "no [provider.nope] table"},
		{"bad provider type", "type = \"cloudflare\"", "type = \"route53\"", "route53", "unknown provider type \"route53\""},
		{"syntax", "ttl = 60", "ttl = = 60", "ttl = = 60", "expected value"},
		{"bad port", "ports = [25, 465]", "ports = [25, 70000]", "70000", "port 70000 out of range"},
		{"issuer-set without issuer_set", "ttl = 60", "ttl = 60\nta = \"issuer-set\"", "ta = \"issuer-set\"", "lineage.mx2.issuer_set: missing"},
		{"issuer-set without 2 1 1", "ports = [25, 465]\nusages = [\"3 1 1\", \"2 1 1\"]", "ports = [25, 465]\nta = \"issuer-set\"\nissuer_set = \"/etc/danehook/le/\"", "ta = \"issuer-set\"", "add \"2 1 1\" to usages"},
		{"issuer_set without issuer-set", "ttl = 60", "ttl = 60\nissuer_set = \"/etc/danehook/le/\"", "issuer_set =", "ta is not \"issuer-set\""},
		{"bad host_id", "state_dir = \"/tmp/danehook-state\"", "host_id = \"mx 1\"\nstate_dir = \"/tmp/danehook-state\"", "host_id", "host_id: \"mx 1\""},
		{"unknown ta", "ttl = 60", "ttl = 60\nta = \"intermediates\"", "ta = \"intermediates\"", "\"issuer-set\""},
		{"zone_transfers outside rfc2136", "api_token_file = \"/etc/danehook/cf.token\"", "api_token_file = \"/etc/danehook/cf.token\"\nzone_transfers = true", "zone_transfers", "provider.cf.zone_transfers: is a setting of type = \"rfc2136\""},
		{"zones at cloudflare", "api_token_file = \"/etc/danehook/cf.token\"", "api_token_file = \"/etc/danehook/cf.token\"\nzones = [\"example.test\"]", "zones", "provider.cf.zones: is a setting of type = \"rfc2136\" and \"libdns\""},
		{"zone and zones", "type = \"rfc2136\"", "type = \"rfc2136\"\nzone = \"example.test.\"\nzones = [\"example.test.\", \"example.net.\"]", "zones", "provider.bind.zones: set \"zone\" (every owner in one zone) or \"zones\" (several), not both"},
		{"zones with a space", "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\"example.test.\",\n  \"example .net\"]", "example .net", "provider.bind.zones: \"example .net\" contains white space"},
		{"zones with an empty label", "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\"example.test.\", \"example..net\"]", "zones", "\"example..net\" has an empty label"},
		{"zones with the root", "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\".\"]", "zones", "\".\" is empty or the root"},
		{"zones twice", "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\"example.test.\",\n  \"Example.Test\"]", "Example.Test", "\"Example.Test\" is listed twice"},
		{"zones with a URL", "type = \"rfc2136\"", "type = \"rfc2136\"\nzones = [\"https://example.test/\"]", "zones", "holds \":\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(good, tt.edit, tt.from, 1)
			if in == good {
				t.Fatalf("edit %q not applied", tt.edit)
			}
			_, err := Parse("danehook.toml", []byte(in))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var ce *Error
			want := 0
			for i, l := range strings.Split(in, "\n") {
				if strings.Contains(l, tt.lineOf) {
					want = i + 1
					break
				}
			}
			if !errors.As(err, &ce) || ce.Line != want {
				t.Errorf("error %v: line = %d, want %d", err, ce.Line, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of a missing file = %v, want ErrNotFound", err)
	}
}

func TestSelectUnknownLineage(t *testing.T) {
	c, err := Parse("danehook.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("nope"); err == nil || !strings.Contains(err.Error(), "mail, mx2") {
		t.Errorf("Select(nope) = %v, want an error listing the configured lineages", err)
	}
	all, _ := c.Select()
	if len(all) != 2 {
		t.Errorf("Select() returned %d lineages, want 2", len(all))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[lineage.x]\nhosts=[]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil && len(c.Lineages) == 0 {
			t.Fatal("valid config without lineages")
		}
	})
}

func TestPackagedExampleParses(t *testing.T) {
	c, err := Load("../../packaging/danehook.toml")
	if err != nil {
		t.Fatalf("packaging/danehook.toml: %v", err)
	}
	if _, err := c.Lineage("mail.example.com"); err != nil {
		t.Error(err)
	}
}
