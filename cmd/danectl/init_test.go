package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/acmelab"
	"github.com/danehook/danehook/internal/testenv"
)

// repoHooks is the hooks/ directory of the source tree, which the package
// installs as /usr/share/danehook/hooks.
func repoHooks(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "hooks"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFile writes data to path (making its directory) with mode perm.
func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// keyPEM returns a PKCS#8 PEM private key: "ec256" or "rsa2048".
func keyPEM(t *testing.T, kind string) string {
	t.Helper()
	var key any
	var err error
	switch kind {
	case "ec256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("keyPEM: unknown kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// certbotWorld is a temporary certbot configuration directory with one
// issued lineage "mail" whose renewal configuration lacks reuse_key, and a
// danehook configuration naming it.
type certbotWorld struct {
	dir, certbotDir, renewalConf, config string
}

const renewalConfNoReuse = `# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/mail
cert = /etc/letsencrypt/live/mail/cert.pem

[renewalparams]
account = 0123456789abcdef
authenticator = standalone
server = https://127.0.0.1:14000/dir
key_type = ecdsa
`

func newCertbotWorld(t *testing.T) *certbotWorld {
	t.Helper()
	w := &certbotWorld{dir: t.TempDir()}
	w.certbotDir = filepath.Join(w.dir, "letsencrypt")
	for _, d := range []string{"live/mail", "renewal-hooks/pre", "renewal-hooks/deploy", "renewal-hooks/post"} {
		if err := os.MkdirAll(filepath.Join(w.certbotDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.renewalConf = filepath.Join(w.certbotDir, "renewal", "mail.conf")
	writeFile(t, w.renewalConf, renewalConfNoReuse, 0o644)
	w.config = filepath.Join(w.dir, "danehook.toml")
	writeFile(t, w.config, fmt.Sprintf(`state_dir = %q
[provider.p]
type = "rfc2136"
server = "127.0.0.1:53"
key_file = %q
[lineage.mail]
hosts = ["mail.example.test"]
provider = "p"
chain_file = %q
certbot_lineage = %q
[lineage.other]
hosts = ["mx2.example.test"]
provider = "p"
chain_file = %q
lego_cert = %q
lego_key = %q
`, filepath.Join(w.dir, "state"), filepath.Join(w.dir, "tsig.key"), filepath.Join(w.dir, "chain", "mail.pem"),
		filepath.Join(w.certbotDir, "live", "mail"), filepath.Join(w.dir, "chain", "other.pem"),
		filepath.Join(w.dir, "lego", "certificates", "mx2.example.test.crt"), filepath.Join(w.dir, "lego", "certificates", "mx2.example.test.key")), 0o600)
	return w
}

func (w *certbotWorld) hook(phase string) string {
	return filepath.Join(w.certbotDir, "renewal-hooks", phase, "danehook")
}

func TestInitCertbot(t *testing.T) {
	w := newCertbotWorld(t)
	hooks := repoHooks(t)
	args := []string{"init", "certbot", "--config", w.config, "--certbot-dir", w.certbotDir, "--hooks-dir", hooks}

	steps := []struct {
		name     string
		extra    []string
		want     []string
		linked   bool
		reuseKey bool
	}{
		{"dry-run", []string{"--dry-run"}, []string{"pre    " + w.hook("pre") + " -> " + filepath.Join(hooks, "certbot/pre/danehook") + ": would link",
			"deploy " + w.hook("deploy"), "post   " + w.hook("post"), "would set reuse_key = True",
			"lineage other: no certbot_lineage", "4 change(s) would be made"}, false, false},
		{"apply", nil, []string{": linked", w.renewalConf + ": set reuse_key = True", "4 change(s) made",
			"note: the hooks read /etc/danehook/danehook.toml unless certbot runs them with DANEHOOK_CONFIG=" + w.config}, true, true},
		{"again", nil, []string{"already in place", "reuse_key = True already", "nothing to change"}, true, true},
		{"again-dry-run", []string{"--dry-run"}, []string{"nothing to change"}, true, true},
	}
	for _, s := range steps {
		code, out, errOut := danectl(t, append(args, s.extra...)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d, want 0; stderr:\n%s", s.name, code, errOut)
		}
		for _, want := range s.want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q; got:\n%s", s.name, want, out)
			}
		}
		for _, p := range certbotPhases {
			target, err := os.Readlink(w.hook(p.dir))
			switch {
			case s.linked && err != nil:
				t.Errorf("%s: %s: %v; want a link", s.name, w.hook(p.dir), err)
			case s.linked && target != filepath.Join(hooks, "certbot", p.dir, "danehook"):
				t.Errorf("%s: %s links to %q, want the %s wrapper", s.name, w.hook(p.dir), target, p.dir)
			case !s.linked && err == nil:
				t.Errorf("%s: %s exists; want nothing created", s.name, w.hook(p.dir))
			}
		}
		conf, _ := os.ReadFile(w.renewalConf)
		if got := strings.Contains(string(conf), "reuse_key = True"); got != s.reuseKey {
			t.Errorf("%s: reuse_key = True in renewal conf: got %v, want %v:\n%s", s.name, got, s.reuseKey, conf)
		}
	}
}

func TestInitCertbotExisting(t *testing.T) {
	hooks := repoHooks(t)
	tests := []struct {
		name     string
		setup    func(t *testing.T, w *certbotWorld)
		wantCode int
		want     string // in stdout (exit 0) or stderr
	}{
		{"other file is an error", func(t *testing.T, w *certbotWorld) {
			writeFile(t, w.hook("deploy"), "#!/bin/sh\necho mine\n", 0o755)
		}, exitUsage, "exists and is not danehook's deploy hook; nothing was changed"},
		{"link elsewhere is an error", func(t *testing.T, w *certbotWorld) {
			os.Symlink("/usr/local/bin/something", w.hook("post"))
		}, exitUsage, `symlink to "/usr/local/bin/something", not danehook's post hook`},
		{"link to the binary is in place", func(t *testing.T, w *certbotWorld) {
			bin := filepath.Join(w.dir, "bin", "dane-prerenew")
			writeFile(t, bin, "#!/bin/sh\n", 0o755)
			os.Symlink(bin, w.hook("pre"))
		}, exitOK, "already in place (links to "},
		{"a copy of the wrapper is in place", func(t *testing.T, w *certbotWorld) {
			data, _ := os.ReadFile(filepath.Join(hooks, "certbot", "deploy", "danehook"))
			writeFile(t, w.hook("deploy"), string(data), 0o755)
		}, exitOK, "already in place (a copy of "},
		{"renewal-hooks missing is created", func(t *testing.T, w *certbotWorld) {
			os.RemoveAll(filepath.Join(w.certbotDir, "renewal-hooks"))
		}, exitOK, ": linked"},
		{"not issued: certonly without hook flags, then dane-reload", func(t *testing.T, w *certbotWorld) {
			os.Remove(w.renewalConf)
		}, exitOK, "certbot certonly --config-dir CERTBOT --reuse-key --cert-name mail -d mail.example.test ... && dane-reload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCertbotWorld(t)
			tt.setup(t, w)
			code, out, errOut := danectl(t, "init", "certbot", "--config", w.config, "--certbot-dir", w.certbotDir, "--hooks-dir", hooks)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			got := out
			if code != exitOK {
				got = errOut
			}
			if want := strings.ReplaceAll(tt.want, "CERTBOT", w.certbotDir); !strings.Contains(got, want) {
				t.Errorf("output lacks %q; got:\n%s", want, got)
			}
			if code != exitOK {
				// Nothing changed: no hook linked, reuse_key untouched.
				for _, p := range certbotPhases {
					if target, err := os.Readlink(w.hook(p.dir)); err == nil && strings.HasPrefix(target, hooks) {
						t.Errorf("%s linked to %s after a conflict; want nothing changed", w.hook(p.dir), target)
					}
				}
				if conf, _ := os.ReadFile(w.renewalConf); string(conf) != renewalConfNoReuse {
					t.Errorf("renewal conf changed after a conflict:\n%s", conf)
				}
			}
		})
	}
}

func TestInitCertbotBadInput(t *testing.T) {
	w := newCertbotWorld(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no certbot dir", []string{"--certbot-dir", filepath.Join(w.dir, "nope"), "--hooks-dir", repoHooks(t)}, "certbot configuration directory"},
		{"no hooks", []string{"--certbot-dir", w.certbotDir, "--hooks-dir", w.dir}, "hook wrapper"},
		{"no config", []string{"--config", filepath.Join(w.dir, "missing.toml"), "--certbot-dir", w.certbotDir, "--hooks-dir", repoHooks(t)}, "configuration file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"init", "certbot", "--config", w.config}, tt.args...)
			code, _, errOut := danectl(t, args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr lacks %q; got:\n%s", tt.want, errOut)
			}
		})
	}
}

func TestInitLego(t *testing.T) {
	w := newCertbotWorld(t)
	writeFile(t, filepath.Join(w.dir, "lego", "certificates", "mx2.example.test.key"), keyPEM(t, "ec256"), 0o600)
	writeFile(t, filepath.Join(w.dir, "chain", "mail.pem"), keyPEM(t, "rsa2048"), 0o600)
	legoPath := filepath.Join(w.dir, "lego")

	// No lego to detect: both versions' flags, and the reason.
	code, out, errOut := danectl(t, "init", "lego", "--config", w.config, "--lego", filepath.Join(w.dir, "no-lego"))
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	hook := func(b string) string { return "'" + b + " --config " + w.config + "'" }
	for _, want := range []string{
		"# lineage mail\n",
		"lego run --cert.name mail --domains mail.example.test --key-type RSA2048 --reuse-key \\\n  --pre-hook " + hook("dane-prerenew") +
			" --deploy-hook " + hook("dane-deploy") + " --post-hook " + hook("dane-reload") + "\n",
		"# lineage other\n",
		"lego run --path " + legoPath + " --cert.name other --domains mx2.example.test --key-type EC256 --reuse-key",
		"lego --path " + legoPath + " --domains mx2.example.test --key-type EC256 run --run-hook " + hook("dane-deploy") + "\n",
		"lego --path " + legoPath + " --domains mx2.example.test --key-type EC256 renew --reuse-key --renew-hook " + hook("dane-deploy") + "\n",
		"hooks:\n  pre:\n    command: \"dane-prerenew --config " + w.config + "\"\n",
		"certificates:\n  mail:\n    domains:\n      - mail.example.test\n    keyType: RSA2048\n    renew:\n      reuseKey: true\n",
		"--version failed", "printing the flags of lego v5 and v4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q; got:\n%s", want, out)
		}
	}

	file := filepath.Join(w.dir, "lego.yml")
	for _, s := range []struct {
		name  string
		args  []string
		want  string
		exist bool
	}{
		{"dry-run", []string{"--dry-run"}, "would write", false},
		{"write", nil, "wrote the .lego.yml snippet", true},
		{"again", nil, "up to date", true},
	} {
		code, out, errOut := danectl(t, append([]string{"init", "lego", "--config", w.config, "--lego-version", "5", "--write", file}, s.args...)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d; stderr:\n%s", s.name, code, errOut)
		}
		if !strings.Contains(out, s.want) {
			t.Errorf("%s: output lacks %q; got:\n%s", s.name, s.want, out)
		}
		if _, err := os.Stat(file); (err == nil) != s.exist {
			t.Errorf("%s: %s exists: %v, want %v", s.name, file, err == nil, s.exist)
		}
	}
	data, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(data), "# danehook: lego v5 configuration snippet") || !strings.Contains(string(data), "reuseKey: true") {
		t.Errorf("%s holds:\n%s", file, data)
	}

	writeFile(t, file, "hooks: {}\n", 0o644)
	code, _, errOut = danectl(t, "init", "lego", "--config", w.config, "--lego-version", "5", "--write", file)
	if code != exitUsage || !strings.Contains(errOut, "exists with other content; not overwritten") {
		t.Errorf("existing other file: exit %d, stderr:\n%s\nwant exit 2 naming the file", code, errOut)
	}
	if data, _ := os.ReadFile(file); string(data) != "hooks: {}\n" {
		t.Errorf("existing other file was changed to:\n%s", data)
	}
}

func TestInitPostfix(t *testing.T) {
	w := newCertbotWorld(t)
	chainDir := filepath.Join(w.dir, "chain")
	writeFile(t, filepath.Join(chainDir, "mail.pem"), keyPEM(t, "ec256"), 0o600)

	code, out, errOut := danectl(t, "init", "postfix", "--config", w.config)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"install -d -m 0700 " + chainDir + "\n",
		"postconf -e 'smtpd_tls_chain_files = " + filepath.Join(chainDir, "mail.pem") + ", " + filepath.Join(chainDir, "other.pem") + "'\n",
		"# note: " + filepath.Join(chainDir, "other.pem") + " (lineage other) does not exist yet",
		"danectl --config " + w.config + " tick\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q; got:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "install -d"); n != 1 {
		t.Errorf("%d install -d lines, want 1 (one directory):\n%s", n, out)
	}

	// Two ECDSA chains cannot both be served.
	writeFile(t, filepath.Join(chainDir, "other.pem"), keyPEM(t, "ec256"), 0o600)
	_, out, _ = danectl(t, "init", "postfix", "--config", w.config)
	if !strings.Contains(out, "# warning: lineages mail, other all hold ECDSA keys") {
		t.Errorf("no warning for two ECDSA chains; got:\n%s", out)
	}
}

// TestInitPostfixCurrent reads the current value with the real postconf
// from a configuration directory of the test's own.
func TestInitPostfixCurrent(t *testing.T) {
	testenv.Require(t, "postconf")
	w := newCertbotWorld(t)
	chain := filepath.Join(w.dir, "chain", "mail.pem")
	other := filepath.Join(w.dir, "chain", "other.pem")
	pfDir := filepath.Join(w.dir, "postfix")
	cfg, _ := os.ReadFile(w.config)
	writeFile(t, w.config, strings.Replace(string(cfg), "[provider.p]", fmt.Sprintf("[postfix]\nconfig_dir = %q\n[provider.p]", pfDir), 1), 0o600)

	for _, tt := range []struct{ mainCF, want string }{
		{"", "# smtpd_tls_chain_files is not set now\n"},
		{"smtpd_tls_chain_files = /etc/ssl/old.pem\n", "# smtpd_tls_chain_files is now \"/etc/ssl/old.pem\"\n"},
		{"smtpd_tls_chain_files = " + chain + ", " + other + "\n", "is already"},
		// postconf -x expands $parameters, as Postfix does when it reads
		// the files: the same files, written with a parameter.
		{"chaindir = " + filepath.Dir(chain) + "\nsmtpd_tls_chain_files = $chaindir/mail.pem, ${chaindir}/other.pem\n", "is already"},
	} {
		writeFile(t, filepath.Join(pfDir, "main.cf"), tt.mainCF, 0o644)
		code, out, errOut := danectl(t, "init", "postfix", "--config", w.config)
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, errOut)
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("main.cf %q: output lacks %q; got:\n%s", tt.mainCF, tt.want, out)
		}
		// The chain files do not exist here: the last line is 'danectl tick'.
		if !strings.Contains(out, "postconf -c "+pfDir+" -e ") || !strings.Contains(out, " tick\n") || strings.Contains(out, "reload\n") {
			t.Errorf("commands do not use config_dir %s:\n%s", pfDir, out)
		}
	}
}

// TestInitLegoVersions: 'init lego' runs the installed lego's --version and
// prints only that major version's flags, with the lab's real lego v5
// (v5.6.0) and lego v4 (v4.35.2) binaries; --lego-version overrides; a
// binary whose output is not lego's gets both.
func TestInitLegoVersions(t *testing.T) {
	w := newCertbotWorld(t)
	v5 := acmelab.RequireTool(t, acmelab.LegoV5)
	v4 := acmelab.RequireTool(t, acmelab.LegoV4)
	fake := filepath.Join(w.dir, "not-lego")
	writeFile(t, fake, "#!/bin/sh\necho 'certbot 2.1.0'\n", 0o755)

	v5only := []string{"lego run --cert.name mail", "--pre-hook", "# .lego.yml (lego v5)", "reuseKey: true"}
	v4only := []string{"run --run-hook", "renew --reuse-key --renew-hook", "# lego v4: no pre or post hook"}
	tests := []struct {
		name       string
		args       []string
		want, lack []string
	}{
		{"lego v5 binary", []string{"--lego", v5}, append([]string{"lego v5.6.0", "its flags only"}, v5only...), v4only},
		{"lego v4 binary", []string{"--lego", v4}, append([]string{"lego v4.35.2", "its flags only"}, v4only...), v5only},
		{"forced 4", []string{"--lego", v5, "--lego-version", "4"}, append([]string{"lego v4 flags (--lego-version 4)"}, v4only...), v5only},
		{"forced 5", []string{"--lego", v4, "--lego-version", "5"}, v5only, v4only},
		{"not lego", []string{"--lego", fake}, append(append([]string{"not a lego version"}, v5only...), v4only...), nil},
		{"bad forced", []string{"--lego-version", "3"}, append(append([]string{"neither 4 nor 5"}, v5only...), v4only...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := danectl(t, append([]string{"init", "lego", "--config", w.config}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, errOut)
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.lack {
				if strings.Contains(out, s) {
					t.Errorf("output has %q, which is not for this lego:\n%s", s, out)
				}
			}
		})
	}
	code, _, errOut := danectl(t, "init", "lego", "--config", w.config, "--lego", v4, "--write", filepath.Join(w.dir, "lego.yml"))
	if code != exitUsage || !strings.Contains(errOut, "only lego v5 reads") {
		t.Errorf("--write with lego v4: exit %d, stderr:\n%s\nwant exit 2", code, errOut)
	}
}
