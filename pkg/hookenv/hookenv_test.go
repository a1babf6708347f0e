package hookenv

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
	lkey, lcert, lchain := filepath.Join(live, "privkey.pem"), filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem")
	touch(t, lkey, lcert, lchain)
	lego := filepath.Join(dir, "certificates")
	key, crt, iss := filepath.Join(lego, "mail.example.test.key"), filepath.Join(lego, "mail.example.test.crt"), filepath.Join(lego, "mail.example.test.issuer.crt")
	touch(t, key, crt, iss)
	wild := filepath.Join(lego, "_.example.test.crt")
	touch(t, wild)
	// acme.sh's domain directory (pkg/acmesh).
	ash := filepath.Join(dir, ".acme.sh", "mail.example.test_ecc")
	akey, acer, aca := filepath.Join(ash, "mail.example.test.key"), filepath.Join(ash, "mail.example.test.cer"), filepath.Join(ash, "ca.cer")
	touch(t, akey, acer, aca, filepath.Join(ash, "fullchain.cer"))
	acme := func(extra map[string]string) map[string]string {
		m := map[string]string{AcmeShDomain: "mail.example.test", AcmeShCertPath: acer, AcmeShKeyPath: akey, AcmeShCACert: aca,
			AcmeShFullchain: filepath.Join(ash, "fullchain.cer")}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	tests := []struct {
		name    string
		vars    map[string]string
		want    *Renewal
		wantErr string
	}{
		{"certbot", map[string]string{CertbotLineage: live, CertbotDomains: "mail.example.test mx.example.test"},
			&Renewal{Client: Certbot, Lineage: "mail", Dir: live, Domains: []string{"mail.example.test", "mx.example.test"},
				KeyFile: lkey, CertFile: lcert, IssuerFiles: []string{lchain}}, ""},
		// RENEWED_LINEAGE is kept as certbot gave it.
		{"certbot trailing slash", map[string]string{CertbotLineage: live + "/"},
			&Renewal{Client: Certbot, Lineage: "mail", Dir: live + "/", KeyFile: lkey, CertFile: lcert, IssuerFiles: []string{lchain}}, ""},
		{"lego v5", map[string]string{LegoV5Name: "mail.example.test", LegoV5Domains: "mail.example.test, mx.example.test", LegoV5CertPath: crt, LegoV5KeyPath: key, LegoV5IssuerPath: iss},
			&Renewal{Client: LegoV5, Lineage: "mail.example.test", Dir: lego, Domains: []string{"mail.example.test", "mx.example.test"},
				KeyFile: key, CertFile: crt, IssuerFiles: []string{iss}}, ""},
		{"lego v5 named other than the domain", map[string]string{LegoV5Name: "mail", LegoV5Domains: "mail.example.test", LegoV5CertPath: crt, LegoV5KeyPath: key},
			&Renewal{Client: LegoV5, Lineage: "mail", Dir: lego, Domains: []string{"mail.example.test"}, KeyFile: key, CertFile: crt}, ""},
		// lego v5.0.0 to v5.0.3 set no LEGO_HOOK_CERT_NAME.
		{"lego v5 without name", map[string]string{LegoV5Domains: "*.example.test", LegoV5CertPath: wild, LegoV5KeyPath: key},
			&Renewal{Client: LegoV5, Lineage: "_.example.test", Dir: lego, Domains: []string{"*.example.test"}, KeyFile: key, CertFile: wild}, ""},
		{"lego v4", map[string]string{LegoV4Domain: "mail.example.test", LegoV4CertPath: crt, LegoV4KeyPath: key, LegoV4IssuerPath: iss},
			&Renewal{Client: LegoV4, Lineage: "mail.example.test", Dir: lego, Domains: []string{"mail.example.test"}, KeyFile: key, CertFile: crt, IssuerFiles: []string{iss}}, ""},
		{"lego v4 without issuer", map[string]string{LegoV4Domain: "mail.example.test", LegoV4CertPath: crt, LegoV4KeyPath: key},
			&Renewal{Client: LegoV4, Lineage: "mail.example.test", Dir: lego, Domains: []string{"mail.example.test"}, KeyFile: key, CertFile: crt}, ""},
		{"lego v5 wins over certbot", map[string]string{CertbotLineage: live, LegoV5Name: "m", LegoV5CertPath: crt, LegoV5KeyPath: key},
			&Renewal{Client: LegoV5, Lineage: "m", Dir: lego, KeyFile: key, CertFile: crt}, ""},
		{"lego v4 wins over certbot", map[string]string{CertbotLineage: live, LegoV4Domain: "m", LegoV4CertPath: crt, LegoV4KeyPath: key},
			&Renewal{Client: LegoV4, Lineage: "m", Dir: lego, Domains: []string{"m"}, KeyFile: key, CertFile: crt}, ""},
		// acme.sh's --reloadcmd and --renew-hook environment.
		{"acme.sh", acme(nil),
			&Renewal{Client: AcmeSh, Lineage: "mail.example.test", Dir: ash, Domains: []string{"mail.example.test"}, KeyFile: akey, CertFile: acer, IssuerFiles: []string{aca}}, ""},
		// The reload command also gets these two (acme.sh _installcert).
		{"acme.sh reloadcmd extras", acme(map[string]string{"Le_ForceNewDomainKey": "1", "Le_Next_Domain_Key": akey + ".next"}),
			&Renewal{Client: AcmeSh, Lineage: "mail.example.test", Dir: ash, Domains: []string{"mail.example.test"}, KeyFile: akey, CertFile: acer, IssuerFiles: []string{aca}}, ""},
		{"certbot wins over acme.sh", acme(map[string]string{CertbotLineage: live}),
			&Renewal{Client: Certbot, Lineage: "mail", Dir: live, KeyFile: lkey, CertFile: lcert, IssuerFiles: []string{lchain}}, ""},
		// CERT_PATH alone (a generic name) is not acme.sh.
		{"CERT_PATH without Le_Domain", map[string]string{AcmeShCertPath: acer, AcmeShKeyPath: akey}, nil, "Le_Domain"},
		{"acme.sh missing key", acme(map[string]string{AcmeShKeyPath: akey + ".gone"}), nil, "CERT_KEY_PATH"},
		{"acme.sh missing ca file", acme(map[string]string{AcmeShCACert: aca + ".gone"}), nil, "CA_CERT_PATH"},
		{"none", map[string]string{"PATH": "/bin"}, nil, "RENEWED_LINEAGE"},
		{"lego v5 missing key file", map[string]string{LegoV5Name: "m", LegoV5CertPath: crt, LegoV5KeyPath: key + ".gone"}, nil, "LEGO_HOOK_CERT_KEY_PATH"},
		{"lego v5 no name, not a .crt", map[string]string{LegoV5CertPath: iss, LegoV5KeyPath: key}, nil, "LEGO_HOOK_CERT_NAME is empty"},
		{"lego v4 missing issuer file", map[string]string{LegoV4Domain: "m", LegoV4CertPath: crt, LegoV4KeyPath: key, LegoV4IssuerPath: "/nonexistent"}, nil, "LEGO_ISSUER_CERT_PATH"},
		{"lego v4 without domain", map[string]string{LegoV4CertPath: crt, LegoV4KeyPath: key}, nil, "LEGO_CERT_DOMAIN is empty"},
		{"lego v4 without key", map[string]string{LegoV4Domain: "m", LegoV4CertPath: crt}, nil, "LEGO_CERT_KEY_PATH is empty"},
		{"certbot not a dir", map[string]string{CertbotLineage: filepath.Join(dir, "nope")}, nil, "RENEWED_LINEAGE"},
		{"certbot missing chain", map[string]string{CertbotLineage: lego}, nil, "privkey.pem is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromEnv(env(tt.vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromEnv =\n%+v\nwant\n%+v", got, tt.want)
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

// TestDeployAlias keeps the deprecated name usable by pkg/deploy.
func TestDeployAlias(t *testing.T) {
	var d *Deploy = &Renewal{Client: Certbot}
	if d.Client != Certbot {
		t.Fatal("Deploy is not Renewal")
	}
}

// TestFromDehydrated follows dehydrated's hook calls (sign_domain,
// command_sign_domains): deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAINFILE
// CHAINFILE TIMESTAMP with the links in CERTDIR/<alias>/; every other
// handler is ignored.
func TestFromDehydrated(t *testing.T) {
	cd := filepath.Join(t.TempDir(), "certs", "mx")
	key, cert, full, chain := filepath.Join(cd, "privkey.pem"), filepath.Join(cd, "cert.pem"), filepath.Join(cd, "fullchain.pem"), filepath.Join(cd, "chain.pem")
	touch(t, key, cert, full, chain)
	got, err := FromDehydrated([]string{"deploy_cert", "mail.example.test", key, cert, full, chain, "1764590000"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Renewal{Client: Dehydrated, Lineage: "mx", Dir: cd, Domains: []string{"mail.example.test"}, KeyFile: key, CertFile: cert, IssuerFiles: []string{chain}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromDehydrated =\n%+v\nwant\n%+v", got, want)
	}
	for _, args := range [][]string{nil, {"startup_hook"}, {"exit_hook", "ERROR"}, {"unchanged_cert", "mail.example.test", key, cert, full, chain},
		{"this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks_in_your_script"}} {
		if r, err := FromDehydrated(args); r != nil || err != nil {
			t.Errorf("FromDehydrated(%q) = %v, %v; want nil, nil (ignored)", args, r, err)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy_cert", "mail.example.test", key}, "2 argument(s)"},
		{[]string{"deploy_cert", "mail.example.test", key, cert + ".gone", full, chain, "1"}, "CERTFILE"},
		{[]string{"deploy_cert", "mail.example.test", key, cert, full, chain + ".gone"}, "CHAINFILE"},
	} {
		if _, err := FromDehydrated(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("FromDehydrated(%q): err = %v, want one naming %q", tt.args, err, tt.want)
		}
	}
}
