package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/fixture"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkWorld is a directory with a valid configuration: one rfc2136
// provider with a 0600 TSIG key file, one cloudflare provider with a 0600
// token file, and one lineage whose chain directory exists.
type checkWorld struct {
	dir, config, keyFile, tokenFile, chainDir, secret string
}

const tokenValue = "cf-token-0123456789abcdefABCDEF0123456789"

// cfTokenShape has the shape of a Cloudflare API token (40 characters).
const cfTokenShape = "Q7xwRk2LmN9pVb4TzY6cHs1JdF8gKa3EuW5oXiR0"

// edit replaces old (which must occur) in the configuration file.
func (w *checkWorld) edit(t *testing.T, old, new string) {
	t.Helper()
	editConfig(t, w.config, old, new, "")
}

func newCheckWorld(t *testing.T) *checkWorld {
	t.Helper()
	w := &checkWorld{dir: t.TempDir()}
	raw := make([]byte, 32)
	rand.Read(raw)
	w.secret = base64.StdEncoding.EncodeToString(raw)
	w.keyFile = filepath.Join(w.dir, "tsig.key")
	writeFile(t, w.keyFile, fmt.Sprintf("key \"danehook\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", w.secret), 0o600)
	w.tokenFile = filepath.Join(w.dir, "cf.token")
	writeFile(t, w.tokenFile, tokenValue+"\n", 0o600)
	w.chainDir = filepath.Join(w.dir, "chains")
	if err := os.Mkdir(w.chainDir, 0o700); err != nil {
		t.Fatal(err)
	}
	w.config = filepath.Join(w.dir, "danehook.toml")
	fixture.WritePostfixConfig(t, filepath.Join(w.dir, "postfix"), filepath.Join(w.chainDir, "mail.pem"))
	w.write(t, "")
	return w
}

// write writes the configuration with extra appended to the lineage table.
func (w *checkWorld) write(t *testing.T, extra string) {
	t.Helper()
	writeFile(t, w.config, fmt.Sprintf(`state_dir = %q
[postfix]
config_dir = %q

[provider.primary]
type = "rfc2136"
server = "127.0.0.1:53"
key_file = %q

[provider.cf]
type = "cloudflare"
api_token_file = %q

[lineage.mail]
hosts = ["mail.example.test"]
provider = "primary"
chain_file = %q
endpoints = ["127.0.0.1:25"]
%s`, filepath.Join(w.dir, "state"), filepath.Join(w.dir, "postfix"), w.keyFile, w.tokenFile, filepath.Join(w.chainDir, "mail.pem"), extra), 0o600)
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, w *checkWorld)
		wantCode int
		want     []string // in stdout
		wantErr  string   // in stderr
	}{
		{"valid", nil, exitOK, []string{
			"syntax and settings ok (1 lineage(s), 2 provider(s))",
			"ok:      provider.primary.key_file = ", `: TSIG key danehook. (hmac-sha256)`,
			"ok:      provider.cf.api_token_file = ",
			"warning: provider.cf: not used by any lineage",
			"lineage.mail.chain_file = ", "directory exists",
			"config check: ", ": ok, 1 warning(s)",
		}, ""},
		{"key file readable by group", func(t *testing.T, w *checkWorld) {
			os.Chmod(w.keyFile, 0o640)
		}, exitUsage, []string{`error:   provider.primary.key_file = "` + "KEYFILE" + `": holds a secret but is accessible by group or others (mode 0640): run chmod 600 KEYFILE`}, ": 1 error(s)"},
		{"token file readable by others", func(t *testing.T, w *checkWorld) {
			os.Chmod(w.tokenFile, 0o604)
		}, exitUsage, []string{"error:   provider.cf.api_token_file = ", "(mode 0604)"}, ": 1 error(s)"},
		{"key file missing", func(t *testing.T, w *checkWorld) {
			os.Remove(w.keyFile)
		}, exitUsage, []string{`error:   provider.primary.key_file = "KEYFILE": file does not exist`}, ""},
		{"key file unparsable", func(t *testing.T, w *checkWorld) {
			writeFile(t, w.keyFile, "key \"danehook\" { algorithm hmac-sha256; secret \"s3cr3tPlaceholder\" \n", 0o600)
		}, exitUsage, []string{`error:   provider.primary.key_file = "KEYFILE": key file`}, ""},
		{"key file is a directory", func(t *testing.T, w *checkWorld) {
			os.Remove(w.keyFile)
			os.Mkdir(w.keyFile, 0o700)
		}, exitUsage, []string{"not a regular file"}, ""},
		{"secret file and env", func(t *testing.T, w *checkWorld) {
			sf := filepath.Join(w.dir, "secret")
			writeFile(t, sf, w.secret+"\n", 0o600)
			cfg, _ := os.ReadFile(w.config)
			s := strings.Replace(string(cfg), fmt.Sprintf("key_file = %q", w.keyFile),
				fmt.Sprintf("key_name = \"dh\"\nsecret_file = %q", sf), 1)
			s += "\n[provider.env]\ntype = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nkey_name = \"dh\"\nsecret_env = \"DANEHOOK_TEST_UNSET_SECRET\"\n"
			writeFile(t, w.config, s, 0o600)
		}, exitOK, []string{"ok:      provider.primary.secret_file = ", "TSIG key dh. (hmac-sha256)",
			`warning: provider.env.secret_env = "DANEHOOK_TEST_UNSET_SECRET": not set in this environment`}, ""},
		{"libdns providers", func(t *testing.T, w *checkWorld) {
			tf := filepath.Join(w.dir, "hz.token")
			writeFile(t, tf, "hz-token\n", 0o644)
			cfg, _ := os.ReadFile(w.config)
			s := string(cfg) + "\n[provider.desec]\ntype = \"libdns\"\nname = \"desec\"\nquery_server = \"127.0.0.1:53\"\napi_token_env = \"DANEHOOK_TEST_UNSET_DESEC\"\n" +
				"\n[provider.hz]\ntype = \"libdns\"\nname = \"hetzner\"\nquery_server = \"127.0.0.1:53\"\napi_token_file = \"" + tf + "\"\n" +
				"\n[provider.aws]\ntype = \"libdns\"\nname = \"route66\"\nquery_server = \"127.0.0.1:53\"\n"
			writeFile(t, w.config, s, 0o600)
		}, exitUsage, []string{`warning: provider.desec.api_token_env = "DANEHOOK_TEST_UNSET_DESEC": not set in this environment`,
			"error:   provider.hz.api_token_file = ", "(mode 0644)",
			`error:   provider.aws.name = "route66": libdns provider "route66" is not compiled in`}, ": 2 error(s)"},
		{"host_id with a cloudflare lineage", func(t *testing.T, w *checkWorld) {
			w.edit(t, "state_dir = ", "host_id = \"mx1\"\nstate_dir = ")
			w.edit(t, `provider = "primary"`, `provider = "cf"`)
		}, exitOK, []string{`warning: provider.cf.type = "cloudflare": keeps the ownership registry of host_id = "mx1" without prerequisites`}, ""},
		{"host_id with an rfc2136 lineage: no registry warning", func(t *testing.T, w *checkWorld) {
			w.edit(t, "state_dir = ", "host_id = \"mx1\"\nstate_dir = ")
		}, exitOK, []string{"config check: ", ": ok, 1 warning(s)"}, ""},
		{"chain directory missing", func(t *testing.T, w *checkWorld) {
			os.Remove(w.chainDir)
		}, exitUsage, []string{"error:   lineage.mail.chain_file = ", "does not exist: install -d -m 0700 CHAINDIR"}, ""},
		{"chain file readable by group", func(t *testing.T, w *checkWorld) {
			writeFile(t, filepath.Join(w.chainDir, "mail.pem"), "x", 0o640)
		}, exitOK, []string{"warning: lineage.mail.chain_file = ", "holds the private key"}, ""},
		{"certbot lineage not issued", func(t *testing.T, w *checkWorld) {
			w.write(t, fmt.Sprintf("certbot_lineage = %q\n", filepath.Join(w.dir, "le", "live", "mail")))
		}, exitOK, []string{"warning: lineage.mail.certbot_lineage = ", "does not exist (not issued yet?)"}, ""},
		{"certbot lineage without reuse_key", func(t *testing.T, w *checkWorld) {
			live := filepath.Join(w.dir, "le", "live", "mail")
			os.MkdirAll(live, 0o755)
			writeFile(t, filepath.Join(w.dir, "le", "renewal", "mail.conf"), renewalConfNoReuse, 0o644)
			w.write(t, fmt.Sprintf("certbot_lineage = %q\n", live))
		}, exitOK, []string{"reuse_key is not True in "}, ""},
		// certbot certonly --csr: the files only, no renewal configuration.
		{"certbot --csr output as certbot_lineage", func(t *testing.T, w *checkWorld) {
			out := filepath.Join(w.dir, "le", "live", "mail")
			for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem"} {
				writeFile(t, filepath.Join(out, f), "x", 0o644)
			}
			w.write(t, fmt.Sprintf("certbot_lineage = %q\n", out))
		}, exitUsage, []string{"error:   lineage.mail.certbot_lineage = ", "is not a certbot lineage", "certbot certonly --csr", "--cert-name mail --reuse-key", "lego_csr"}, ": 1 error(s)"},
		{"renew_command runs certbot --csr", func(t *testing.T, w *checkWorld) {
			w.write(t, `renew_command = ["/usr/bin/certbot", "certonly", "--csr", "/etc/danehook/mail.csr", "--cert-path", "/etc/postfix/cert.pem"]`+"\n")
		}, exitUsage, []string{"error:   lineage.mail.renew_command = ", "certbot makes no lineage for a CSR"}, ": 1 error(s)"},
		{"renew_command runs lego --csr", func(t *testing.T, w *checkWorld) {
			w.write(t, `renew_command = ["lego", "--csr", "/etc/danehook/mail.csr", "renew"]`+"\n")
		}, exitOK, nil, ""},
		// dehydrated: dehydrated's default makes a new key at every renewal.
		{"dehydrated key not pinned", func(t *testing.T, w *checkWorld) {
			main := filepath.Join(w.dir, "dehydrated", "config")
			writeFile(t, main, "BASEDIR=/var/lib/dehydrated\n", 0o644)
			w.write(t, fmt.Sprintf("dehydrated_cert = %q\ndehydrated_config = %q\n", filepath.Join(w.dir, "dehydrated", "certs", "mail"), main))
		}, exitOK, []string{"warning: lineage.mail.dehydrated_cert = ", `PRIVATE_KEY_RENEW is "yes"`, "startup_hook"}, ""},
		{"dehydrated key pinned", func(t *testing.T, w *checkWorld) {
			main := filepath.Join(w.dir, "dehydrated", "config")
			writeFile(t, main, "PRIVATE_KEY_RENEW=yes\n", 0o644)
			cert := filepath.Join(w.dir, "dehydrated", "certs", "mail")
			writeFile(t, filepath.Join(cert, "config"), "PRIVATE_KEY_RENEW=\"no\"\n", 0o644)
			w.write(t, fmt.Sprintf("dehydrated_cert = %q\ndehydrated_config = %q\n", cert, main))
		}, exitOK, []string{"ok:      lineage.mail.dehydrated_cert = ", `exists; PRIVATE_KEY_RENEW="no"`}, ""},
		{"dehydrated config missing", func(t *testing.T, w *checkWorld) {
			w.write(t, fmt.Sprintf("dehydrated_cert = %q\ndehydrated_config = %q\n", filepath.Join(w.dir, "certs", "mail"), filepath.Join(w.dir, "nope")))
		}, exitUsage, []string{"error:   lineage.mail.dehydrated_config = ", "file does not exist"}, ""},
		{"acme.sh forces a new key", func(t *testing.T, w *checkWorld) {
			d := filepath.Join(w.dir, "acme.sh", "mail.example.test_ecc")
			writeFile(t, filepath.Join(d, "mail.example.test.conf"), "Le_Domain='mail.example.test'\nLe_ForceNewDomainKey='1'\n", 0o600)
			w.write(t, fmt.Sprintf("acmesh_dir = %q\n", d))
		}, exitOK, []string{"warning: lineage.mail.acmesh_dir = ", "Le_ForceNewDomainKey='1'", "--always-force-new-domain-key"}, ""},
		{"acme.sh keeps the key", func(t *testing.T, w *checkWorld) {
			d := filepath.Join(w.dir, "acme.sh", "mail.example.test_ecc")
			writeFile(t, filepath.Join(d, "mail.example.test.conf"), "Le_Domain='mail.example.test'\n", 0o600)
			w.write(t, fmt.Sprintf("acmesh_dir = %q\n", d))
		}, exitOK, []string{"ok:      lineage.mail.acmesh_dir = ", "acme.sh keeps the domain key"}, ""},
		{"two clients", func(t *testing.T, w *checkWorld) {
			w.write(t, fmt.Sprintf("certbot_lineage = %q\nacmesh_dir = %q\n", filepath.Join(w.dir, "le", "live", "mail"), w.dir))
		}, exitUsage, []string{"a lineage has one ACME client: certbot_lineage and acmesh_dir are both set"}, ""},
		{"ca_file missing and a bad endpoint", func(t *testing.T, w *checkWorld) {
			cfg, _ := os.ReadFile(w.config)
			s := strings.Replace(string(cfg), `endpoints = ["127.0.0.1:25"]`, `endpoints = ["127.0.0.1"]`, 1)
			writeFile(t, w.config, s+fmt.Sprintf("ca_file = %q\n", filepath.Join(w.dir, "nope.pem")), 0o600)
		}, exitUsage, []string{"error:   lineage.mail.ca_file = ", "error:   lineage.mail.endpoints[0] = \"127.0.0.1\": want host:port"}, ": 2 error(s)"},
		{"postfix reads certbot's files", func(t *testing.T, w *checkWorld) {
			writeFile(t, filepath.Join(w.dir, "postfix", "main.cf"), "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /etc/letsencrypt/live/mail/fullchain.pem\nsmtpd_tls_key_file = /etc/letsencrypt/live/mail/privkey.pem\n", 0o644)
		}, exitOK, []string{"warning: postfix = ", "fullchain.pem", "serves no TLS chain yet", "postconf -c", "smtpd_tls_chain_files = CHAINDIR/mail.pem"}, ""},
		// The files exist: Postfix serves a chain danehook does not
		// protect, and every run refuses (issue 9 item 5), exit 8.
		{"postfix serves certbot's existing live files", func(t *testing.T, w *checkWorld) {
			live := filepath.Join(w.dir, "le", "live", "mail")
			writeFile(t, filepath.Join(live, "fullchain.pem"), "placeholder\n", 0o644)
			writeFile(t, filepath.Join(live, "privkey.pem"), "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.dir, "postfix", "main.cf"), "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = "+live+"/fullchain.pem\nsmtpd_tls_key_file = "+live+"/privkey.pem\n", 0o644)
		}, cliapp.ExitPostfix, []string{"error:   postfix = ", `service "smtp/inet" reads smtpd_tls_cert_file`, "fullchain.pem", "(main.cf)", "danehook does not protect",
			"once 'danectl status' shows the switch safe, run: postconf -c", "-e 'smtpd_tls_chain_files = CHAINDIR/mail.pem' && danectl tick"}, ": 1 error(s)"},
		{"postfix serves certbot's live files and the chain file exists", func(t *testing.T, w *checkWorld) {
			live := filepath.Join(w.dir, "le", "live", "mail")
			writeFile(t, filepath.Join(live, "fullchain.pem"), "placeholder\n", 0o644)
			writeFile(t, filepath.Join(live, "privkey.pem"), "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.chainDir, "mail.pem"), "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.dir, "postfix", "main.cf"), "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = "+live+"/privkey.pem, "+live+"/fullchain.pem\n", 0o644)
		}, cliapp.ExitPostfix, []string{"error:   postfix = ", "reads smtpd_tls_chain_files", "privkey.pem", "-e 'smtpd_tls_chain_files = CHAINDIR/mail.pem' && postfix -c"}, ""},
		{"postfix serves snakeoil through chain files", func(t *testing.T, w *checkWorld) {
			snake := filepath.Join(w.dir, "ssl-cert-snakeoil.pem")
			writeFile(t, snake, "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.dir, "postfix", "main.cf"), "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = "+snake+"\n", 0o644)
		}, cliapp.ExitPostfix, []string{"error:   postfix = ", "ssl-cert-snakeoil.pem", "smtpd_tls_chain_files", "postconf -c"}, ""},
		{"a master.cf override on submission only", func(t *testing.T, w *checkWorld) {
			other := filepath.Join(w.dir, "old-copy.pem")
			writeFile(t, other, "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.dir, "postfix", "master.cf"), "smtp      inet  n       -       y       -       -       smtpd\nsubmission inet n       -       y       -       -       smtpd\n  -o smtpd_tls_chain_files="+other+"\n", 0o644)
		}, cliapp.ExitPostfix, []string{"error:   postfix = ", `service "submission/inet" reads smtpd_tls_chain_files`, "(master.cf service submission/inet)", "old-copy.pem", "-P submission/inet/smtpd_tls_chain_files=CHAINDIR/mail.pem"}, ""},
		{"a master.cf override naming a file not there yet", func(t *testing.T, w *checkWorld) {
			writeFile(t, filepath.Join(w.dir, "postfix", "master.cf"), "smtp      inet  n       -       y       -       -       smtpd\nsubmission inet n       -       y       -       -       smtpd\n  -o smtpd_tls_chain_files="+filepath.Join(w.dir, "nope.pem")+"\n", 0o644)
		}, exitOK, []string{"warning: postfix = ", "submission/inet", "-P submission/inet/smtpd_tls_chain_files=CHAINDIR/mail.pem"}, ""},
		{"postfix refusal and a configuration error", func(t *testing.T, w *checkWorld) {
			snake := filepath.Join(w.dir, "ssl-cert-snakeoil.pem")
			writeFile(t, snake, "placeholder\n", 0o600)
			writeFile(t, filepath.Join(w.dir, "postfix", "main.cf"), "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = "+snake+"\n", 0o644)
			os.Remove(w.keyFile)
		}, exitUsage, []string{"error:   postfix = ", "error:   provider.primary.key_file"}, ": 2 error(s)"},
		{"syntax error has file:line", func(t *testing.T, w *checkWorld) {
			w.write(t, "ttl = = 3\n")
		}, exitUsage, nil, "CONFIG:19:"},
		{"unknown setting has file:line", func(t *testing.T, w *checkWorld) {
			w.write(t, "chian_file = \"x\"\n")
		}, exitUsage, []string{"error:   CONFIG:19: lineage.mail.chian_file: unknown setting"}, ": 1 error(s)"},
		{"IP address as host", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["192.0.2.25"]`)
		}, exitUsage, []string{`error:   CONFIG:15: lineage.mail.hosts[0]: "192.0.2.25" is an IP address`}, ": 1 error(s)"},
		{"relative host name", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["mail"]`)
		}, exitUsage, []string{`error:   CONFIG:15: lineage.mail.hosts[0]: "mail" is not a fully qualified name`}, ""},
		{"wildcard host", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["*.example.test"]`)
		}, exitUsage, []string{`CONFIG:15: lineage.mail.hosts[0]: "*.example.test" is a wildcard`}, ""},
		{"host with a space", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["mail.example.test mx2.example.test"]`)
		}, exitUsage, []string{`CONFIG:15: lineage.mail.hosts[0]: `, "white space"}, ""},
		{"doubled dot", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["mail..example.test"]`)
		}, exitUsage, []string{`CONFIG:15: lineage.mail.hosts[0]: "mail..example.test" has an empty label`}, ""},
		{"label over 63 octets", func(t *testing.T, w *checkWorld) {
			w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["`+strings.Repeat("m", 64)+`.example.test"]`)
		}, exitUsage, []string{`CONFIG:15: lineage.mail.hosts[0]: `, "label of 64 octets"}, ""},
		{"server without a port", func(t *testing.T, w *checkWorld) {
			w.edit(t, `server = "127.0.0.1:53"`, `server = "127.0.0.1"`)
		}, exitUsage, []string{`error:   CONFIG:7: provider.primary.server: "127.0.0.1": want host:port`}, ""},
		{"server port 99999", func(t *testing.T, w *checkWorld) {
			w.edit(t, `server = "127.0.0.1:53"`, `server = "127.0.0.1:99999"`)
		}, exitUsage, []string{`CONFIG:7: provider.primary.server: "127.0.0.1:99999": port "99999" out of range 1-65535`}, ""},
		{"duplicated ports", func(t *testing.T, w *checkWorld) {
			w.write(t, "ports = [25, 25]\n")
		}, exitUsage, []string{`CONFIG:19: lineage.mail.ports: port 25 listed twice`}, ""},
		{"negative timeout", func(t *testing.T, w *checkWorld) {
			w.edit(t, `server = "127.0.0.1:53"`, "server = \"127.0.0.1:53\"\ntimeout = -2")
		}, exitUsage, []string{`CONFIG:8: provider.primary.timeout: -2: want a positive number of seconds`}, ""},
		{"chain_file names a directory", func(t *testing.T, w *checkWorld) {
			os.Mkdir(filepath.Join(w.chainDir, "mail.pem"), 0o700)
		}, exitUsage, []string{`CONFIG:17: lineage.mail.chain_file: "CHAINDIR/mail.pem" is a directory`}, ""},
		{"chain directory writable by others", func(t *testing.T, w *checkWorld) {
			os.Chmod(w.chainDir, 0o777)
		}, exitUsage, []string{`CONFIG:17: lineage.mail.chain_file: its directory CHAINDIR is writable by others (mode 0777)`}, ""},
		{"config file writable by others", func(t *testing.T, w *checkWorld) {
			os.Chmod(w.config, 0o666)
		}, exitUsage, []string{`error:   CONFIG: the configuration file is writable by others (mode 0666)`}, ""},
		{"ta without 2 x x", func(t *testing.T, w *checkWorld) {
			w.write(t, "ta = \"issuer\"\n")
		}, exitUsage, []string{`CONFIG:19: lineage.mail.ta: "issuer" is set but usages has no "2 1 1"`}, ""},
		{"certbot_lineage and lego_cert", func(t *testing.T, w *checkWorld) {
			w.write(t, "certbot_lineage = \"/etc/letsencrypt/live/mail\"\nlego_cert = \"/var/lib/lego/certificates/mail.crt\"\n")
		}, exitUsage, []string{`CONFIG:20: lineage.mail.lego_cert: a lineage has one ACME client: certbot_lineage and lego_cert are both set`}, ""},
		{"a TSIG secret where the variable's name belongs", func(t *testing.T, w *checkWorld) {
			w.edit(t, fmt.Sprintf("key_file = %q", w.keyFile), fmt.Sprintf("key_name = \"dh\"\nsecret_env = %q", w.secret))
		}, exitUsage, []string{`CONFIG:9: provider.primary.secret_env: looks like a secret, not the name of an environment variable (the value is not shown)`}, ""},
		{"a Cloudflare token where the file's name belongs", func(t *testing.T, w *checkWorld) {
			w.edit(t, fmt.Sprintf("api_token_file = %q", w.tokenFile), fmt.Sprintf("api_token_file = %q", cfTokenShape))
		}, exitUsage, []string{`CONFIG:12: provider.cf.api_token_file: looks like a secret, not a file name (the value is not shown)`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each case has its own files; most of the time is postconf
			w := newCheckWorld(t)
			if tt.setup != nil {
				tt.setup(t, w)
			}
			code, out, errOut := danectl(t, "config", "check", "--config", w.config)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			subst := strings.NewReplacer("KEYFILE", w.keyFile, "CHAINDIR", w.chainDir, "CONFIG", w.config)
			for _, want := range tt.want {
				if want = subst.Replace(want); !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q; got:\n%s", want, out)
				}
			}
			if want := subst.Replace(tt.wantErr); !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q; got:\n%s", want, errOut)
			}
			for _, secret := range []string{w.secret, tokenValue, "s3cr3tPlaceholder", cfTokenShape} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("output contains a secret (%.6s…):\n%s\n%s", secret, out, errOut)
				}
			}
		})
	}
}

// TestConfigCheckReportsEveryProblem: one run reports every problem of the
// file, each with file:line, and the file-system checks as well.
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	w := newCheckWorld(t)
	w.edit(t, `server = "127.0.0.1:53"`, "server = \"127.0.0.1\"\ntimeout = -1")
	w.edit(t, fmt.Sprintf("api_token_file = %q", w.tokenFile), "api_token_env = \""+cfTokenShape+"\"")
	w.edit(t, `hosts = ["mail.example.test"]`, `hosts = ["mail", "192.0.2.1", "*.example.test"]`)
	editConfig(t, w.config, "", "", "ports = [25, 0, 25]\nta = \"root\"\nlego_cert = \"/x.crt\"\ncertbot_lineage = \"/y\"\n")
	os.Chmod(w.chainDir, 0o777)
	code, out, errOut := danectl(t, "config", "check", "--config", w.config)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
	}
	want := []string{
		w.config + ":7: provider.primary.server",
		w.config + ":8: provider.primary.timeout",
		w.config + ":13: provider.cf.api_token_env",
		w.config + ":16: lineage.mail.hosts[0]",
		w.config + ":16: lineage.mail.hosts[1]",
		w.config + ":16: lineage.mail.hosts[2]",
		w.config + ":18: lineage.mail.chain_file: its directory",
		w.config + ":20: lineage.mail.ports: port 0 out of range",
		w.config + ":20: lineage.mail.ports: port 25 listed twice",
		w.config + ":21: lineage.mail.ta",
		w.config + ":22: lineage.mail.lego_cert",
	}
	for _, s := range want {
		if !strings.Contains(out, "error:   "+s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
	if !strings.Contains(errOut, fmt.Sprintf(": %d error(s)", len(want))) {
		t.Errorf("stderr %q, want %d error(s)\n%s", errOut, len(want), out)
	}
	if strings.Contains(out+errOut, cfTokenShape) || strings.Contains(out, "syntax and settings ok") {
		t.Errorf("output shows the token, or claims the settings are ok:\n%s", out)
	}
}

func TestConfigCheckEnvSet(t *testing.T) {
	w := newCheckWorld(t)
	cfg, _ := os.ReadFile(w.config)
	s := strings.Replace(string(cfg), fmt.Sprintf("key_file = %q", w.keyFile), "key_name = \"dh\"\nsecret_env = \"DANEHOOK_TEST_SECRET\"", 1)
	writeFile(t, w.config, s, 0o600)
	for _, tt := range []struct {
		value    string
		wantCode int
		want     string
	}{
		{w.secret, exitOK, `ok:      provider.primary.secret_env = "DANEHOOK_TEST_SECRET": TSIG key dh. (hmac-sha256)`},
		{"not base64!", exitUsage, `error:   provider.primary.secret_env = "DANEHOOK_TEST_SECRET": `},
	} {
		t.Setenv("DANEHOOK_TEST_SECRET", tt.value)
		code, out, errOut := danectl(t, "config", "check", "--config", w.config)
		if code != tt.wantCode || !strings.Contains(out, tt.want) {
			t.Errorf("exit %d (want %d), stdout lacks %q?\n%s\n%s", code, tt.wantCode, tt.want, out, errOut)
		}
		if strings.Contains(out+errOut, tt.value) {
			t.Errorf("output contains the secret")
		}
	}
}
