package hookenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func touch(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "mail")
	touch(t, filepath.Join(live, "privkey.pem"), filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem"))
	lego := filepath.Join(dir, "certificates")
	key, crt, iss := filepath.Join(lego, "mail.example.test.key"), filepath.Join(lego, "mail.example.test.crt"), filepath.Join(lego, "mail.example.test.issuer.crt")
	touch(t, key, crt, iss)

	tests := []struct {
		name    string
		vars    map[string]string
		client  Client
		lineage string
		domains string
		wantErr string
	}{
		{"certbot", map[string]string{CertbotLineage: live, CertbotDomains: "mail.example.test mx.example.test"}, Certbot, "mail", "mail.example.test,mx.example.test", ""},
		{"certbot trailing slash", map[string]string{CertbotLineage: live + "/"}, Certbot, "mail", "", ""},
		{"lego v5", map[string]string{LegoV5Name: "mail.example.test", LegoV5Domains: "mail.example.test,mx.example.test", LegoV5CertPath: crt, LegoV5KeyPath: key, LegoV5IssuerPath: iss}, LegoV5, "mail.example.test", "mail.example.test,mx.example.test", ""},
		{"lego v4", map[string]string{LegoV4Domain: "mail.example.test", LegoV4CertPath: crt, LegoV4KeyPath: key, LegoV4IssuerPath: iss}, LegoV4, "mail.example.test", "mail.example.test", ""},
		{"lego v4 without issuer", map[string]string{LegoV4Domain: "mail.example.test", LegoV4CertPath: crt, LegoV4KeyPath: key}, LegoV4, "mail.example.test", "mail.example.test", ""},
		{"none", map[string]string{"PATH": "/bin"}, "", "", "", "RENEWED_LINEAGE"},
		{"lego v5 missing key file", map[string]string{LegoV5Name: "m", LegoV5CertPath: crt, LegoV5KeyPath: key + ".gone"}, "", "", "", "LEGO_HOOK_CERT_KEY_PATH"},
		{"lego v4 missing issuer file", map[string]string{LegoV4Domain: "m", LegoV4CertPath: crt, LegoV4KeyPath: key, LegoV4IssuerPath: "/nonexistent"}, "", "", "", "LEGO_ISSUER_CERT_PATH"},
		{"certbot not a dir", map[string]string{CertbotLineage: filepath.Join(dir, "nope")}, "", "", "", "RENEWED_LINEAGE"},
		{"certbot missing chain", map[string]string{CertbotLineage: lego}, "", "", "", "privkey.pem is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := FromEnv(env(tt.vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if d.Client != tt.client || d.Lineage != tt.lineage {
				t.Errorf("got client %q lineage %q, want %q %q", d.Client, d.Lineage, tt.client, tt.lineage)
			}
			if got := strings.Join(d.Domains, ","); tt.domains != "" && got != tt.domains {
				t.Errorf("domains = %q, want %q", got, tt.domains)
			}
			if d.KeyFile == "" || d.CertFile == "" {
				t.Errorf("files not filled: %+v", d)
			}
		})
	}
}

func TestNoClientIsSentinel(t *testing.T) {
	_, err := FromEnv(env(nil))
	if !errors.Is(err, ErrNoClient) {
		t.Fatalf("err = %v, want ErrNoClient", err)
	}
	for _, v := range []string{"post hook", LegoV4CertPath, LegoV5CertPath} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error %q does not mention %q", err, v)
		}
	}
}
