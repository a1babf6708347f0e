package config

import (
	"errors"
	"strings"
	"testing"
)

const libdnsConf = `
[provider.desec]
type = "libdns"
name = "desec"
api_token_file = "/etc/danehook/desec.token"
query_server = "45.54.76.1:53"

[provider.aws]
type = "libdns"
name = "route53"
region = "eu-central-1"
max_retries = 3
query_server = "192.0.2.1:53"

[provider.lab]
type = "libdns"
name = "rfc2136"
server = "127.0.0.1:5353"
key_file = "/etc/danehook/tsig.key"

[lineage.mail]
hosts = ["mail.example.com"]
provider = "desec"
chain_file = "/etc/postfix/danehook/mail.pem"
`

func TestParseLibdns(t *testing.T) {
	c, err := Parse("danehook.toml", []byte(libdnsConf))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Providers["desec"]
	if d.LibdnsName != "desec" || d.APITokenFile != "/etc/danehook/desec.token" || d.QueryServer != "45.54.76.1:53" || len(d.Settings) != 0 {
		t.Errorf("desec: %+v", d)
	}
	a := c.Providers["aws"]
	if a.Settings["region"] != "eu-central-1" || a.Settings["max_retries"] != int64(3) || len(a.Settings) != 2 {
		t.Errorf("route53 settings: %#v", a.Settings)
	}
	if l := c.Providers["lab"]; l.QueryServer != "127.0.0.1:5353" || l.KeyFile == "" {
		t.Errorf("rfc2136: query_server defaults to server, got %+v", l)
	}
}

func TestParseLibdnsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"no name", `name = "desec"`, ``, `provider.desec.name: missing`},
		{"no query server", `query_server = "45.54.76.1:53"`, ``, `provider.desec.query_server: missing: an authoritative server`},
		// An unknown setting in a table that is not libdns stays an error.
		{"unknown setting elsewhere", `[lineage.mail]`, "[lineage.mail]\ncolour = \"red\"", `lineage.mail.colour: unknown setting`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("danehook.toml", []byte(strings.Replace(libdnsConf, tc.from, tc.to, 1)))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
