package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretB64 is a fresh base64 TSIG secret (32 bytes, as tsig-keygen makes
// for hmac-sha256); cfToken has the shape of a Cloudflare API token.
var (
	secretB64 = func() string { b := make([]byte, 32); rand.Read(b); return base64.StdEncoding.EncodeToString(b) }()
	cfToken   = "Xy7" + strings.Repeat("aB3_", 9) + "q-Z"
)

// TestProblems: each setting that would make the hooks fail later is an
// error naming file:line and the setting; a secret-shaped value is never
// printed.
func TestProblems(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name      string
		edit      string // replaces the line `hosts = ["mail.example.test"]` of lineage mail, or is appended to a table
		table     string // "" lineage mail; "bind", "cf": that provider
		lineOf    string // the error's line holds this text
		setting   string
		want      string
		forbidden string // must not appear in the error
	}{
		{name: "IPv4 address as host", edit: `hosts = ["192.0.2.25"]`, lineOf: "192.0.2.25", setting: "lineage.mail.hosts[0]", want: "is an IP address"},
		{name: "IPv6 address as host", edit: `hosts = ["2001:db8::25"]`, lineOf: "2001:db8::25", setting: "lineage.mail.hosts[0]", want: "is an IP address"},
		{name: "relative name", edit: `hosts = ["mail"]`, lineOf: `["mail"]`, setting: "lineage.mail.hosts[0]", want: "not a fully qualified name"},
		{name: "wildcard", edit: `hosts = ["*.example.test"]`, lineOf: "*.example.test", setting: "lineage.mail.hosts[0]", want: "is a wildcard"},
		{name: "space in a name", edit: `hosts = ["mail.example.test mx2.example.test"]`, lineOf: "mx2.example.test\"]", setting: "lineage.mail.hosts[0]", want: "white space"},
		{name: "doubled dot", edit: `hosts = ["mail..example.test"]`, lineOf: "mail..example", setting: "lineage.mail.hosts[0]", want: "empty label"},
		{name: "label over 63 octets", edit: `hosts = ["` + long63 + `b.example.test"]`, lineOf: long63, setting: "lineage.mail.hosts[0]", want: "label of 64 octets"},
		{name: "label of 63 octets is fine, the second host is not", edit: "hosts = [\n  \"" + long63 + ".example.test\",\n  \"mx_2.example.test\",\n]", lineOf: "mx_2", setting: "lineage.mail.hosts[1]", want: `label "mx_2"`},
		{name: "name over 253 octets", edit: `hosts = ["` + strings.Repeat(long63+".", 4) + `test"]`, lineOf: long63, setting: "lineage.mail.hosts[0]", want: "260 octets long"},
		{name: "duplicated port", edit: "ports = [25, 465, 25]", lineOf: "ports = [25, 465, 25]", setting: "lineage.mail.ports", want: "port 25 listed twice"},
		{name: "port 0", edit: "ports = [0]", lineOf: "ports = [0]", setting: "lineage.mail.ports", want: "port 0 out of range"},
		{name: "ta without a 2 x x usage", edit: `ta = "root"`, lineOf: `ta = "root"`, setting: "lineage.mail.ta", want: `usages has no "2 1 1"`},
		{name: "certbot and lego at once", edit: "certbot_lineage = \"/etc/letsencrypt/live/mail\"\nlego_cert = \"/var/lib/lego/certificates/mail.crt\"", lineOf: "lego_cert", setting: "lineage.mail.lego_cert", want: "a lineage has one ACME client: certbot_lineage and lego_cert are both set"},
		{name: "negative ttl", edit: "ttl = -5", lineOf: "ttl = -5", setting: "lineage.mail.ttl", want: "out of range"},
		{name: "server without a port", table: "bind", edit: `server = "192.0.2.53"`, lineOf: `"192.0.2.53"`, setting: "provider.bind.server", want: "want host:port"},
		{name: "server port 0", table: "bind", edit: `server = "192.0.2.53:0"`, lineOf: `"192.0.2.53:0"`, setting: "provider.bind.server", want: `port "0" out of range`},
		{name: "server port 99999", table: "bind", edit: `server = "192.0.2.53:99999"`, lineOf: "99999", setting: "provider.bind.server", want: `port "99999" out of range`},
		{name: "resolver without a port", table: "bind", edit: `resolver = "127.0.0.1"`, lineOf: "resolver", setting: "provider.bind.resolver", want: "want host:port"},
		{name: "negative timeout", table: "bind", edit: "timeout = -1", lineOf: "timeout = -1", setting: "provider.bind.timeout", want: "want a positive number of seconds"},
		{name: "TSIG secret where its variable's name belongs", table: "bind", edit: "key_name = \"dh\"\nsecret_env = \"" + secretB64 + "\"", lineOf: "secret_env", setting: "provider.bind.secret_env", want: "looks like a secret", forbidden: secretB64},
		{name: "TSIG secret where a file name belongs", table: "bind", edit: "key_name = \"dh\"\nsecret_file = \"" + secretB64 + "\"", lineOf: "secret_file", setting: "provider.bind.secret_file", want: "looks like a secret", forbidden: secretB64},
		{name: "pasted tsig-keygen block as key_file", table: "bind", edit: `key_file = 'key "dh" { algorithm hmac-sha256; secret "` + secretB64 + `"; };'`, lineOf: "key_file = 'key", setting: "provider.bind.key_file", want: "looks like a secret", forbidden: secretB64},
		{name: "Cloudflare token where its variable's name belongs", table: "cf", edit: `api_token_env = "` + cfToken + `"`, lineOf: "api_token_env", setting: "provider.cf.api_token_env", want: "looks like a secret", forbidden: cfToken},
		{name: "Cloudflare token where a file name belongs", table: "cf", edit: `api_token_file = "` + cfToken + `"`, lineOf: "api_token_file", setting: "provider.cf.api_token_file", want: "looks like a secret", forbidden: cfToken},
		{name: "not a variable name", table: "cf", edit: `api_token_env = "CF TOKEN"`, lineOf: "api_token_env", setting: "provider.cf.api_token_env", want: "not the name of an environment variable", forbidden: "CF TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := edited(t, tc.table, tc.edit)
			_, err := Parse("/etc/danehook/danehook.toml", []byte(in))
			var probs Problems
			if !errors.As(err, &probs) || len(probs) != 1 {
				t.Fatalf("Parse = %v, want exactly one problem\n%s", err, in)
			}
			p := probs[0]
			want := lineOf(in, tc.lineOf)
			if p.Setting != tc.setting || !strings.Contains(p.Problem, tc.want) || p.Line != want || p.File != "/etc/danehook/danehook.toml" {
				t.Errorf("problem %q (setting %q, line %d); want setting %q, line %d, %q", p, p.Setting, p.Line, tc.setting, want, tc.want)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("config /etc/danehook/danehook.toml:%d: %s: ", want, tc.setting)) {
				t.Errorf("error %q does not start with file:line: setting", err)
			}
			if tc.forbidden != "" && strings.Contains(err.Error(), tc.forbidden) {
				t.Errorf("the error shows the secret: %q", err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce != p {
				t.Errorf("errors.As(*Error) does not find the problem")
			}
		})
	}
}

// edited returns the test configuration with edit applied: in lineage mail
// (replacing its hosts line when edit sets hosts) or appended to provider
// table.
func edited(t *testing.T, table, edit string) string {
	t.Helper()
	const hosts = `hosts = ["mail.example.test"]`
	switch {
	case table == "" && strings.HasPrefix(edit, "hosts"):
		return strings.Replace(good, hosts, edit, 1)
	case table == "":
		return strings.Replace(good, hosts, hosts+"\n"+edit, 1)
	}
	head := "[provider." + table + "]\n"
	if !strings.Contains(good, head) {
		t.Fatalf("no %s", head)
	}
	// A setting that is already there is replaced.
	key, _, _ := strings.Cut(edit, " =")
	lines := strings.Split(good, "\n")
	in, out := false, []string{}
	replaced := false
	for _, l := range lines {
		if strings.HasPrefix(l, "[") {
			if in && !replaced {
				out = append(out[:len(out)-1], edit, "")
				replaced = true
			}
			in = l+"\n" == head
		}
		if in && strings.HasPrefix(l, key+" =") && !strings.Contains(edit, "\n") {
			out = append(out, edit)
			replaced = true
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func lineOf(in, marker string) int {
	for i, l := range strings.Split(in, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	return -1
}

// TestAllProblemsReported: several problems in one file are each reported,
// in file order, by one Parse.
func TestAllProblemsReported(t *testing.T) {
	in := strings.Replace(good, `server = "127.0.0.1:5353"`, `server = "127.0.0.1"`+"\ntimeout = -3\nhostz = 1", 1)
	in = strings.Replace(in, `hosts = ["mail.example.test"]`, `hosts = ["mail", "192.0.2.1"]`+"\nports = [25, 25]\nta = \"issuer\"", 1)
	in = strings.Replace(in, `api_token_file = "/etc/danehook/cf.token"`, `api_token_env = "`+cfToken+`"`, 1)
	_, err := Parse("d.toml", []byte(in))
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Parse = %v, want Problems", err)
	}
	want := []string{"provider.bind.server", "provider.bind.timeout", "provider.bind.hostz", "provider.cf.api_token_env",
		"lineage.mail.hosts[0]", "lineage.mail.hosts[1]", "lineage.mail.ports", "lineage.mail.ta"}
	var got []string
	last := 0
	for _, p := range probs {
		got = append(got, p.Setting)
		if p.Line < last || p.Line == 0 {
			t.Errorf("%s at line %d after line %d: want file order with lines", p.Setting, p.Line, last)
		}
		last = p.Line
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems %q\nwant %q", got, want)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(want) {
		t.Errorf("error has %d lines, want one per problem:\n%v", lines, err)
	}
	if strings.Contains(err.Error(), cfToken) {
		t.Errorf("the error shows the token")
	}
}

func TestLooksLikeSecret(t *testing.T) {
	for v, want := range map[string]bool{
		secretB64:                         true,
		strings.TrimRight(secretB64, "="): true,
		cfToken:                           true,
		"/etc/danehook/tsig.key":          false,
		"/etc/danehook/Key2":              false,
		"tsig.key":                        false,
		"CLOUDFLARE_API_TOKEN":            false,
		"DANEHOOK_TSIG_SECRET_2":          false,
		"danehook":                        false,
		"MyKey1":                          false,
		`key "x" { secret "abc"; };`:      true,
		"/srv/keys/" + secretB64[:20]:     false,
		strings.Repeat("a", 40):           false,
		"aB3" + strings.Repeat("x", 37):   true,
		"relative/Dir2/file":              false,
		"hmac-sha256":                     false,
		"dh":                              false,
		"_25._tcp.mail.example.test.":     false,
		base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")): true,
	} {
		if got := LooksLikeSecret(v); got != want {
			t.Errorf("LooksLikeSecret(%.12q…) = %v, want %v", v, got, want)
		}
	}
}

// TestCheckFiles covers what only the file system shows.
func TestCheckFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir, cfgDir, chainDir string)
		setting string // "" a problem of the file itself
		want    string // "" no problem
	}{
		{name: "all private", want: ""},
		{name: "chain_file names a directory", setting: "lineage.mail.chain_file", want: "is a directory",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) { mkdir(t, filepath.Join(chainDir, "mail.pem"), 0o700) }},
		{name: "chain directory writable by others", setting: "lineage.mail.chain_file", want: "writable by others (mode 0777)",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) { chmod(t, chainDir, 0o777) }},
		{name: "chain directory world-writable even with the sticky bit", setting: "lineage.mail.chain_file", want: "writable by others",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) { chmod(t, chainDir, 0o777|os.ModeSticky) }},
		{name: "config file writable by others", want: "the configuration file is writable by others (mode 0666)",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) {
				chmod(t, filepath.Join(cfgDir, "danehook.toml"), 0o666)
			}},
		{name: "config directory writable by others", want: "is writable by others (mode 0777): anyone can replace",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) { chmod(t, cfgDir, 0o777) }},
		{name: "config directory with the sticky bit", want: "",
			setup: func(t *testing.T, dir, cfgDir, chainDir string) { chmod(t, cfgDir, 0o777|os.ModeSticky) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgDir, chainDir := filepath.Join(dir, "etc"), filepath.Join(dir, "chains")
			mkdir(t, cfgDir, 0o755)
			mkdir(t, chainDir, 0o700)
			path := filepath.Join(cfgDir, "danehook.toml")
			text := strings.Replace(good, "/etc/postfix/danehook/mail-ecdsa.pem", filepath.Join(chainDir, "mail.pem"), 1)
			if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir, cfgDir, chainDir)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			probs := c.CheckFiles()
			if tc.want == "" {
				if len(probs) > 0 {
					t.Errorf("CheckFiles = %v, want nothing", probs)
				}
				return
			}
			if len(probs) != 1 || probs[0].Setting != tc.setting || !strings.Contains(probs[0].Problem, tc.want) {
				t.Fatalf("CheckFiles = %v, want one problem of %q with %q", probs, tc.setting, tc.want)
			}
			if tc.setting != "" && probs[0].Line != lineOf(text, filepath.Join(chainDir, "mail.pem")) {
				t.Errorf("line %d, want the chain_file line", probs[0].Line)
			}
		})
	}
}

func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, mode)
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
