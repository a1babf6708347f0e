package dnsupdate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func cfWriteToken(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloudflare.token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is filtered by umask
		t.Fatal(err)
	}
	return path
}

func TestCloudflareTokenFromFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr error  // nil: success
		wantMsg string // substring of the error
	}{
		{"0600 with newline", cfTestToken + "\n", 0o600, cfTestToken, nil, ""},
		{"0400", cfTestToken, 0o400, cfTestToken, nil, ""},
		{"group readable", cfTestToken, 0o640, "", ErrCloudflareTokenInsecure, "chmod 600"},
		{"world readable", cfTestToken, 0o604, "", ErrCloudflareTokenInsecure, "chmod 600"},
		{"group writable", cfTestToken, 0o620, "", ErrCloudflareTokenInsecure, "mode 0620"},
		{"empty", "\n", 0o600, "", ErrCloudflareNoToken, ""},
		{"two words", cfTestToken + " " + cfTestToken, 0o600, "", nil, "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := cfWriteToken(t, tc.content, tc.mode)
			got, err := CloudflareTokenFromFile(path)
			if tc.wantErr == nil && tc.wantMsg == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want the token", strings.ReplaceAll(got, cfTestToken, "<token>"), err)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %q, want it to name %q and mention %q", err, path, tc.wantMsg)
			}
			if strings.Contains(err.Error(), cfTestToken) {
				t.Errorf("error contains the token: %q", strings.ReplaceAll(err.Error(), cfTestToken, "<token>"))
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		if _, err := CloudflareTokenFromFile(t.TempDir()); !errors.Is(err, ErrCloudflareTokenInsecure) {
			t.Errorf("got %v, want ErrCloudflareTokenInsecure", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := CloudflareTokenFromFile(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v, want os.ErrNotExist", err)
		}
	})
}

func TestCloudflareTokenFromEnv(t *testing.T) {
	good := cfWriteToken(t, cfTestToken+"\n", 0o600)
	loose := cfWriteToken(t, cfTestToken, 0o644)
	for _, tc := range []struct {
		name, token, file string
		want              string
		wantErr           error
		wantMsg           string
	}{
		{"token", cfTestToken, "", cfTestToken, nil, ""},
		{"file", "", good, cfTestToken, nil, ""},
		{"loose file", "", loose, "", ErrCloudflareTokenInsecure, "chmod 600"},
		{"both", cfTestToken, good, "", nil, "keep only one"},
		{"neither", "", "", "", ErrCloudflareNoToken, CloudflareTokenFileEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(CloudflareTokenEnv, tc.token)
			t.Setenv(CloudflareTokenFileEnv, tc.file)
			got, err := CloudflareTokenFromEnv()
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want the token", strings.ReplaceAll(got, cfTestToken, "<token>"), err)
				}
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
			if strings.Contains(err.Error(), cfTestToken) {
				t.Error("error contains the token")
			}
		})
	}
}
