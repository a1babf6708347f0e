package certbot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const conf = `# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/mail
cert = /etc/letsencrypt/live/mail/cert.pem

# Options used in the renewal process
[renewalparams]
account = 0123
authenticator = standalone
server = https://127.0.0.1:14000/dir
key_type = ecdsa
%s
[[webroot_map]]
`

func TestEnsureReuseKey(t *testing.T) {
	tests := []struct {
		name, line string
		before     bool
		changed    bool
	}{
		{"missing", "", false, true},
		{"false", "reuse_key = False", false, true},
		{"true", "reuse_key = True", true, false},
		{"lower true", "reuse_key = true", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mail.conf")
			os.WriteFile(p, []byte(strings.Replace(conf, "%s", tt.line, 1)), 0o644)
			got, err := ReuseKey(p)
			if err != nil || got != tt.before {
				t.Fatalf("ReuseKey = %v, %v; want %v", got, err, tt.before)
			}
			changed, err := EnsureReuseKey(p)
			if err != nil || changed != tt.changed {
				t.Fatalf("EnsureReuseKey = %v, %v; want changed %v", changed, err, tt.changed)
			}
			if ok, _ := ReuseKey(p); !ok {
				t.Error("reuse_key not True after EnsureReuseKey")
			}
			b, _ := os.ReadFile(p)
			if strings.Count(string(b), "reuse_key") != 1 || !strings.Contains(string(b), "key_type = ecdsa") {
				t.Errorf("file after repair:\n%s", b)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
				t.Errorf("mode changed to %v", fi.Mode().Perm())
			}
		})
	}
}

func TestNotARenewalFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.conf")
	os.WriteFile(p, []byte("hello = world\n"), 0o600)
	if _, err := EnsureReuseKey(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want one naming %s", err, p)
	}
	if _, err := ReuseKey(filepath.Join(t.TempDir(), "none.conf")); err == nil {
		t.Error("ReuseKey of a missing file succeeded")
	}
}

func TestRenewalConf(t *testing.T) {
	if got := RenewalConf("/etc/letsencrypt/live/mail.example.com/"); got != "/etc/letsencrypt/renewal/mail.example.com.conf" {
		t.Errorf("RenewalConf = %q", got)
	}
}
