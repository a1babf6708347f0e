package postfix_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/postfix"
)

func TestParseAssignmentList(t *testing.T) {
	out := "smtpd_tls_chain_files = /a.pem, /b.pem\n" +
		"smtpd_tls_cert_file =\n" +
		"submission/inet/smtpd_tls_chain_files = $config_directory/a.pem\n" +
		"x = y = z\n" +
		"postconf: warning: bogus: unknown parameter\n" +
		"\n"
	want := [][2]string{
		{"smtpd_tls_chain_files", "/a.pem, /b.pem"},
		{"smtpd_tls_cert_file", ""},
		{"submission/inet/smtpd_tls_chain_files", "$config_directory/a.pem"},
		{"x", "y = z"},
	}
	if got := postfix.ParseAssignmentList(out); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseAssignmentList got %q want %q", got, want)
	}
}

func FuzzParseAssignmentList(f *testing.F) {
	for _, s := range []string{"a = b\n", "a =\n", "s/inet/p = v", " = x", "a b = c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, kv := range postfix.ParseAssignmentList(s) {
			if kv[0] == "" || strings.ContainsAny(kv[0], " \t\n") || strings.Contains(kv[1], "\n") {
				t.Fatalf("ParseAssignmentList(%q) gave %q", s, kv)
			}
		}
	})
}

func TestCutServiceParam(t *testing.T) {
	tests := []struct {
		in, svc, param string
		ok             bool
	}{
		{"submission/inet/smtpd_tls_chain_files", "submission/inet", "smtpd_tls_chain_files", true},
		{"127.0.0.1:2525/inet/x", "127.0.0.1:2525/inet", "x", true},
		{"private/x/unix/p", "private/x/unix", "p", true},
		{"inet/p", "", "", false},
		{"a/b/", "", "", false},
		{"p", "", "", false},
	}
	for _, tt := range tests {
		svc, param, ok := postfix.CutServiceParam(tt.in)
		if svc != tt.svc || param != tt.param || ok != tt.ok {
			t.Errorf("CutServiceParam(%q) got %q, %q, %v want %q, %q, %v", tt.in, svc, param, ok, tt.svc, tt.param, tt.ok)
		}
	}
}

func TestSMTPDServices(t *testing.T) {
	out := "smtp       inet  n       -       y       -       -       smtpd\n" +
		"smtp       inet  n       -       y       -       1       postscreen\n" +
		"smtpd      pass  -       -       y       -       -       smtpd\n" +
		"submission inet  n       -       y       -       -       smtpd -o smtpd_tls_security_level=encrypt\n" +
		"127.0.0.1:2525 inet n    -       n       -       1       /usr/lib/postfix/sbin/smtpd -o x=y\n" +
		"tlsproxy   unix  -       -       y       -       0       tlsproxy\n" +
		"short line\n"
	want := []string{"smtp/inet", "smtpd/pass", "submission/inet", "127.0.0.1:2525/inet"}
	if got := postfix.SMTPDServices(out); !reflect.DeepEqual(got, want) {
		t.Errorf("SMTPDServices got %q want %q", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/etc/postfix", "/etc/postfix"},
		{"smtp/inet/smtpd_tls_chain_files=/a.pem,/b.pem", "smtp/inet/smtpd_tls_chain_files=/a.pem,/b.pem"},
		{"smtpd_tls_chain_files = /a.pem", "'smtpd_tls_chain_files = /a.pem'"},
		{"it's", `'it'\''s'`},
		{"$x", "'$x'"},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := postfix.ShellQuote(tt.in); got != tt.want {
			t.Errorf("ShellQuote(%q) got %s want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzShellQuote(f *testing.F) {
	for _, s := range []string{"a b", "it's", "$(x)", "`x`", "\n", ""} {
		f.Add(s)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		f.Skip("no sh")
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		out, err := exec.Command("sh", "-c", "printf %s "+postfix.ShellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Fatalf("sh printf %%s %s got %q, %v want %q", postfix.ShellQuote(s), out, err, s)
		}
	})
}

func TestSameFiles(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(real, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pem")
	if err := os.Symlink("chain.pem", link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		got, want []string
		same      bool
	}{
		{[]string{"/a", "/b"}, []string{"/b", "/a"}, true},
		{[]string{"/a", "/a"}, []string{"/a"}, true},
		{[]string{"/x/../a"}, []string{"/a"}, true},
		{[]string{"/a"}, []string{"/a", "/b"}, false},
		{nil, nil, false},
		{nil, []string{"/a"}, false},
		{[]string{link}, []string{real}, true},
	}
	for _, tt := range tests {
		if got := postfix.SameFiles(tt.got, tt.want); got != tt.same {
			t.Errorf("SameFiles(%q, %q) got %v want %v", tt.got, tt.want, got, tt.same)
		}
	}
}

func TestFixLine(t *testing.T) {
	want := []string{"/var/lib/danehook/rsa.pem", "/var/lib/danehook/ecdsa.pem"}
	main := map[string]string{postfix.ParamChainFiles: "main.cf"}
	master := func(s string) map[string]string {
		return map[string]string{postfix.ParamChainFiles: "master.cf service " + s}
	}
	ok := postfix.ServiceTLS{Service: "smtp/inet", ChainFiles: want, Source: main, SecurityLevel: "may"}
	legacy := postfix.ServiceTLS{Service: "smtp/inet", CertKeyPairs: [][2]string{{"/le/fullchain.pem", "/le/privkey.pem"}},
		CertKeyParams: [][2]string{{"smtpd_tls_cert_file", "smtpd_tls_key_file"}}, Source: main, SecurityLevel: "may"}
	sub := postfix.ServiceTLS{Service: "submission/inet", ChainFiles: []string{"/old.pem"}, Source: master("submission/inet"), SecurityLevel: "encrypt"}
	smtps := postfix.ServiceTLS{Service: "smtps/inet", ChainFiles: []string{"/old.pem"}, Source: master("smtps/inet"), SecurityLevel: "encrypt"}
	noTLS := postfix.ServiceTLS{Service: "10025/inet", Source: main, SecurityLevel: "none"}
	tests := []struct {
		desc     string
		services []postfix.ServiceTLS
		dir      string
		fix      string
	}{
		{"all read it", []postfix.ServiceTLS{ok, noTLS}, "", ""},
		{"main.cf legacy", []postfix.ServiceTLS{legacy}, "",
			"postconf -e 'smtpd_tls_chain_files = /var/lib/danehook/rsa.pem, /var/lib/danehook/ecdsa.pem'"},
		{"master.cf overrides", []postfix.ServiceTLS{ok, sub, smtps}, "/etc/postfix-out",
			"postconf -c /etc/postfix-out -P submission/inet/smtpd_tls_chain_files=/var/lib/danehook/rsa.pem,/var/lib/danehook/ecdsa.pem smtps/inet/smtpd_tls_chain_files=/var/lib/danehook/rsa.pem,/var/lib/danehook/ecdsa.pem"},
		{"both", []postfix.ServiceTLS{legacy, sub}, "/etc/my postfix",
			"postconf -c '/etc/my postfix' -e 'smtpd_tls_chain_files = /var/lib/danehook/rsa.pem, /var/lib/danehook/ecdsa.pem' && " +
				"postconf -c '/etc/my postfix' -P submission/inet/smtpd_tls_chain_files=/var/lib/danehook/rsa.pem,/var/lib/danehook/ecdsa.pem"},
	}
	for _, tt := range tests {
		cfg := &postfix.Config{ConfigDir: tt.dir, Services: tt.services}
		if got := cfg.FixLine(tt.dir, want); got != tt.fix {
			t.Errorf("%s: FixLine got\n  %s\nwant\n  %s", tt.desc, got, tt.fix)
		}
		err := cfg.Check(want)
		if (err == nil) != (tt.fix == "") {
			t.Errorf("%s: Check got %v", tt.desc, err)
		}
	}
	if ok, wrong := (&postfix.Config{Services: []postfix.ServiceTLS{noTLS}}).Reads(want); ok || len(wrong) != 0 {
		t.Errorf("Reads with no service offering TLS got %v, %v want false and none", ok, wrong)
	}
	err := (&postfix.Config{Services: []postfix.ServiceTLS{noTLS}}).Check(want)
	if err == nil || !strings.Contains(err.Error(), "no smtpd service offers TLS") {
		t.Errorf("Check with no service offering TLS got %v", err)
	}
}
