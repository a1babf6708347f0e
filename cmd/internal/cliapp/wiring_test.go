package cliapp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
)

// testSecret is a base64 TSIG secret made for this test only.
const testSecret = "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA="

func TestNewPublisher(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("key.conf", "key \"deploy-key\" {\n\talgorithm hmac-sha256;\n\tsecret \""+testSecret+"\";\n};\n", 0o600)
	openKey := write("open.conf", "key \"deploy-key\" {\n\talgorithm hmac-sha256;\n\tsecret \""+testSecret+"\";\n};\n", 0o644)
	secretFile := write("secret", testSecret+"\n", 0o600)
	tokenFile := write("token", "cf-token-for-tests\n", 0o600)
	t.Setenv("DANEHOOK_TEST_SECRET", testSecret)
	t.Setenv("DANEHOOK_TEST_TOKEN", "cf-token-from-env")
	t.Setenv("DANEHOOK_TEST_UNSET", "")

	tests := []struct {
		name    string
		p       config.Provider
		check   func(t *testing.T, pub Publisher)
		wantErr string // substring; "" for success
	}{
		{"key file", config.Provider{Name: "bind", Type: "rfc2136", Server: "127.0.0.1:53", KeyFile: keyFile, Timeout: 3},
			func(t *testing.T, pub Publisher) {
				r := pub.(*dnsupdate.RFC2136)
				if r.Key.Name != "deploy-key." || r.Server != "127.0.0.1:53" || r.Timeout.Seconds() != 3 {
					t.Errorf("RFC2136 %+v key %q, want server 127.0.0.1:53, key deploy-key., timeout 3s", r, r.Key.Name)
				}
			}, ""},
		{"secret file", config.Provider{Name: "bind", Type: "rfc2136", KeyName: "k1", SecretFile: secretFile},
			func(t *testing.T, pub Publisher) {
				if k := pub.(*dnsupdate.RFC2136).Key; k.Name != "k1." || k.Secret != testSecret {
					t.Errorf("key %q, want k1. with the file's secret", k.Name)
				}
			}, ""},
		{"secret env", config.Provider{Name: "bind", Type: "rfc2136", KeyName: "k2", SecretEnv: "DANEHOOK_TEST_SECRET"},
			func(t *testing.T, pub Publisher) {
				if k := pub.(*dnsupdate.RFC2136).Key; k.Name != "k2." || k.Secret != testSecret {
					t.Errorf("key %q, want k2. with the variable's secret", k.Name)
				}
			}, ""},
		{"token file", config.Provider{Name: "cf", Type: "cloudflare", APITokenFile: tokenFile, Zone: "example.com."},
			func(t *testing.T, pub Publisher) {
				if c := pub.(*dnsupdate.Cloudflare); c.APIToken != "cf-token-for-tests" || c.Zone != "example.com." {
					t.Errorf("Cloudflare zone %q, token from the file expected", c.Zone)
				}
			}, ""},
		{"token env", config.Provider{Name: "cf", Type: "cloudflare", APITokenEnv: "DANEHOOK_TEST_TOKEN", Timeout: 7},
			func(t *testing.T, pub Publisher) {
				if c := pub.(*dnsupdate.Cloudflare); c.APIToken != "cf-token-from-env" {
					t.Error("Cloudflare token not taken from the variable")
				}
				if c := pub.(*dnsupdate.Cloudflare); c.Timeout.Seconds() != 7 {
					t.Errorf("Cloudflare timeout %s, want the setting's 7s", c.Timeout)
				}
			}, ""},
		{"key file open to others", config.Provider{Name: "bind", Type: "rfc2136", KeyFile: openKey}, nil, "chmod 600"},
		{"secret env unset", config.Provider{Name: "bind", Type: "rfc2136", KeyName: "k", SecretEnv: "DANEHOOK_TEST_UNSET"}, nil, "DANEHOOK_TEST_UNSET"},
		{"token env unset", config.Provider{Name: "cf", Type: "cloudflare", APITokenEnv: "DANEHOOK_TEST_UNSET"}, nil, "DANEHOOK_TEST_UNSET is unset or empty"},
		{"unknown type", config.Provider{Name: "x", Type: "route53"}, nil, `provider "x": unknown type "route53"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := NewPublisher(&tt.p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPublisher error %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "provider \""+tt.p.Name+"\"") {
					t.Errorf("error %q does not name the provider", err)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Error("error contains the secret")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPublisher: %v", err)
			}
			tt.check(t, pub)
		})
	}
}

func TestPostfix(t *testing.T) {
	cfg := &config.Config{Postfix: config.Postfix{ConfigDir: "/etc/postfix-out", Command: "/usr/sbin/postfix"}}
	if pf := Postfix(cfg); pf.ConfigDir != "/etc/postfix-out" || pf.Postfix != "/usr/sbin/postfix" {
		t.Errorf("Postfix(cfg) = %+v, want config_dir and command from [postfix]", pf)
	}
	if pf := Postfix(&config.Config{}); pf.ConfigDir != "" || pf.Postfix != "" {
		t.Errorf("Postfix(empty) = %+v, want the default instance", pf)
	}
}
