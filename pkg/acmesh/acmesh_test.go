package acmesh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// conf is a domain configuration as acme.sh v3.1.4 writes it (_setopt:
// KEY='value' lines, base64 values between __ACME_BASE64__START_ and
// __ACME_BASE64__END_).
const conf = `Le_Domain='mail.example.org'
Le_Alt='no'
Le_Webroot='/var/www/html'
Le_PreHook=''
Le_PostHook=''
Le_RenewHook='__ACME_BASE64__START_ZGFuZS1kZXBsb3k=__ACME_BASE64__END_'
Le_API='https://acme-v02.api.letsencrypt.org/directory'
Le_Keylength='ec-256'
Le_OrderFinalize='https://acme-v02.api.letsencrypt.org/acme/finalize/1/2'
Le_ForceNewDomainKey='1'
Le_NextRenewTime='1767225600'
`

func TestLayoutOf(t *testing.T) {
	for _, dir := range []string{"/root/.acme.sh/mail.example.org_ecc", "/root/.acme.sh/mail.example.org/"} {
		l := LayoutOf(dir)
		d := filepath.Clean(dir)
		want := Layout{Dir: d, Domain: "mail.example.org", Key: d + "/mail.example.org.key", Cert: d + "/mail.example.org.cer",
			CACert: d + "/ca.cer", Fullchain: d + "/fullchain.cer", Conf: d + "/mail.example.org.conf"}
		if l != want {
			t.Errorf("LayoutOf(%q) =\n%+v\nwant\n%+v", dir, l, want)
		}
	}
}

func TestForcesNewKeyAndRepair(t *testing.T) {
	tests := []struct {
		name, content string
		force         bool
	}{
		{"set", conf, true},
		{"absent", strings.Replace(conf, "Le_ForceNewDomainKey='1'\n", "", 1), false},
		{"other value", strings.Replace(conf, "='1'\nLe_Next", "='0'\nLe_Next", 1), false},
		{"commented", strings.Replace(conf, "Le_ForceNewDomainKey=", "#Le_ForceNewDomainKey=", 1), false},
		{"last wins", conf + "Le_ForceNewDomainKey=''\n", false},
		{"set twice", "Le_ForceNewDomainKey=''\n" + conf, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mail.example.org.conf")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ForcesNewKey(p)
			if err != nil || got != tt.force {
				t.Fatalf("ForcesNewKey = %v, %v; want %v", got, err, tt.force)
			}
			changed, err := EnsureKeyKept(p)
			if err != nil || changed != tt.force {
				t.Fatalf("EnsureKeyKept = %v, %v; want changed %v", changed, err, tt.force)
			}
			if got, _ := ForcesNewKey(p); got {
				t.Fatal("still forces a new key after EnsureKeyKept")
			}
			b, _ := os.ReadFile(p)
			for _, keep := range []string{"Le_Domain='mail.example.org'\n", "Le_RenewHook='__ACME_BASE64__START_ZGFuZS1kZXBsb3k=__ACME_BASE64__END_'\n", "Le_NextRenewTime='1767225600'\n"} {
				if !strings.Contains(string(b), keep) {
					t.Errorf("line %q lost:\n%s", keep, b)
				}
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
			}
		})
	}
}

func TestMissingConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.conf")
	if _, err := ForcesNewKey(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("ForcesNewKey: err = %v, want one naming %s", err, p)
	}
	if _, err := EnsureKeyKept(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("EnsureKeyKept: err = %v, want one naming %s", err, p)
	}
}
