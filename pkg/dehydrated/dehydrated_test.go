package dehydrated

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRead sources configurations shaped like Debian's
// /etc/dehydrated/config (CONFIG_D, BASEDIR) and dehydrated's
// per-certificate and DOMAINS_D files, as dehydrated does.
func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		main      string            // main config ("" for none)
		files     map[string]string // relative to the test directory
		certDir   string            // relative
		wantRenew string
		wantMain  string
		wantCC    string // relative
	}{
		{"no config: dehydrated's default", "", nil, "certs/mail", "yes", "yes", "certs/mail/config"},
		{"debian main config", "CONFIG_D=$D/conf.d\nBASEDIR=/var/lib/dehydrated\nWELLKNOWN=\"${BASEDIR}/acme-challenges\"\n",
			map[string]string{"conf.d/x.sh": "echo noise\n"}, "certs/mail", "yes", "yes", "certs/mail/config"},
		{"main says no", "PRIVATE_KEY_RENEW=\"no\"\n", nil, "certs/mail", "no", "no", "certs/mail/config"},
		{"CONFIG_D says no", "CONFIG_D=$D/conf.d\n", map[string]string{"conf.d/keys.sh": "PRIVATE_KEY_RENEW=no\n"}, "certs/mail", "no", "no", "certs/mail/config"},
		{"per-certificate says no", "", map[string]string{"certs/mail/config": "PRIVATE_KEY_RENEW=\"no\"\n"}, "certs/mail", "no", "yes", "certs/mail/config"},
		{"per-certificate overrides main", "PRIVATE_KEY_RENEW=no\n", map[string]string{"certs/mail/config": "PRIVATE_KEY_RENEW=yes\n"}, "certs/mail", "yes", "no", "certs/mail/config"},
		// With DOMAINS_D, certdir/config is not read at all.
		{"DOMAINS_D", "DOMAINS_D=$D/domains.d\n", map[string]string{"certs/mail/config": "PRIVATE_KEY_RENEW=no\n", "domains.d/mail": "KEY_ALGO=rsa\n"},
			"certs/mail", "yes", "yes", "domains.d/mail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			main := ""
			if tt.main != "" {
				main = filepath.Join(dir, "config")
				write(t, main, strings.ReplaceAll(tt.main, "$D", dir))
			}
			for f, c := range tt.files {
				write(t, filepath.Join(dir, f), c)
			}
			s, err := Read(t.Context(), main, filepath.Join(dir, tt.certDir))
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyRenew != tt.wantRenew || s.MainKeyRenew != tt.wantMain || s.CertConfig != filepath.Join(dir, tt.wantCC) {
				t.Errorf("Read = %+v; want KeyRenew %q, MainKeyRenew %q, CertConfig %s", s, tt.wantRenew, tt.wantMain, tt.wantCC)
			}
			if s.Pinned() != (tt.wantRenew == "no") {
				t.Errorf("Pinned() = %v with KeyRenew %q", s.Pinned(), s.KeyRenew)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(t.Context(), filepath.Join(dir, "missing"), dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing main config: err = %v, want one naming it", err)
	}
	bad := filepath.Join(dir, "bad")
	write(t, bad, "false\n") // a file whose sourcing fails
	if _, err := Read(t.Context(), bad, dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("failing main config: err = %v, want one naming %s", err, bad)
	}
	cert := filepath.Join(dir, "certs", "mail")
	write(t, filepath.Join(cert, "config"), "return 3\n")
	if _, err := Read(t.Context(), "", cert); err == nil || !strings.Contains(err.Error(), "per-certificate") {
		t.Errorf("failing per-certificate config: err = %v, want one saying so", err)
	}
}

func TestEnsureKeyKept(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config")
	write(t, main, "PRIVATE_KEY_RENEW=yes\nKEY_ALGO=prime256v1\n")
	cert := filepath.Join(dir, "certs", "mail")

	// No per-certificate configuration yet (the first issuance): it is made.
	s, changed, err := EnsureKeyKept(t.Context(), main, cert)
	if err != nil || !changed || s.KeyRenew != "yes" {
		t.Fatalf("EnsureKeyKept = %+v, %v, %v; want a change from \"yes\"", s, changed, err)
	}
	if s2, _ := Read(t.Context(), main, cert); !s2.Pinned() {
		t.Fatalf("after the repair PRIVATE_KEY_RENEW is %q", s2.KeyRenew)
	}
	// Idempotent.
	if _, changed, err := EnsureKeyKept(t.Context(), main, cert); err != nil || changed {
		t.Fatalf("second EnsureKeyKept: changed %v, %v; want no change", changed, err)
	}
	// A per-certificate configuration that says yes keeps its other lines.
	cc := filepath.Join(cert, "config")
	write(t, cc, "KEY_ALGO=rsa\nexport PRIVATE_KEY_RENEW=\"yes\"\nRENEW_DAYS=20")
	if err := os.Chmod(cc, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := EnsureKeyKept(t.Context(), main, cert); err != nil || !changed {
		t.Fatalf("EnsureKeyKept over \"yes\": changed %v, %v", changed, err)
	}
	b, _ := os.ReadFile(cc)
	got := string(b)
	if strings.Contains(got, `"yes"`) || !strings.Contains(got, "KEY_ALGO=rsa\n") || !strings.Contains(got, "RENEW_DAYS=20\n") || !strings.HasSuffix(got, "PRIVATE_KEY_RENEW=\"no\"\n") {
		t.Errorf("per-certificate configuration after the repair:\n%s", got)
	}
	if fi, _ := os.Stat(cc); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	if s, _ := Read(t.Context(), main, cert); !s.Pinned() {
		t.Errorf("after the repair PRIVATE_KEY_RENEW is %q", s.KeyRenew)
	}
}

func TestMainConfig(t *testing.T) {
	if got := MainConfig("/x/config"); got != "/x/config" {
		t.Errorf("MainConfig(configured) = %q", got)
	}
	want := ""
	for _, p := range DefaultConfigs {
		if _, err := os.Stat(p); err == nil {
			want = p
			break
		}
	}
	if got := MainConfig(""); got != want {
		t.Errorf("MainConfig(\"\") = %q, want %q", got, want)
	}
	if got := Alias("/var/lib/dehydrated/certs/mail.example.org/"); got != "mail.example.org" {
		t.Errorf("Alias = %q", got)
	}
}
