package dnsupdate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=" // base64("secret-secret-secret-secret-1234")

func TestParseTSIGKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    TSIGKey
		wantErr string
	}{
		{name: "tsig-keygen output", in: "key \"deploy-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n",
			want: TSIGKey{Name: "deploy-key.", Algorithm: "hmac-sha256", Secret: testSecret}},
		{name: "one line, bare name, dot algorithm", in: `key deploy-key. { algorithm HMAC-SHA512.; secret "` + testSecret + `"; };`,
			want: TSIGKey{Name: "deploy-key.", Algorithm: "hmac-sha512", Secret: testSecret}},
		{name: "comments and odd white space", in: "# made by hand\n// another\n/* block\ncomment */ key\r\n\"K.Example\"{secret\"" + testSecret + "\";algorithm hmac-sha1 ; } ;",
			want: TSIGKey{Name: "k.example.", Algorithm: "hmac-sha1", Secret: testSecret}},
		{name: "secret split by spaces", in: `key k { algorithm hmac-sha384; secret "c2VjcmV0 LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="; };`,
			want: TSIGKey{Name: "k.", Algorithm: "hmac-sha384", Secret: testSecret}},
		{name: "empty", in: "# nothing\n", wantErr: "no key statement"},
		{name: "two keys", in: `key a { algorithm hmac-sha256; secret "` + testSecret + `"; }; key b { algorithm hmac-sha256; secret "` + testSecret + `"; };`, wantErr: "2 key statements"},
		{name: "md5 refused", in: `key a { algorithm hmac-md5; secret "` + testSecret + `"; };`, wantErr: "unsupported algorithm"},
		{name: "no secret", in: `key a { algorithm hmac-sha256; };`, wantErr: "has no secret"},
		{name: "no algorithm", in: `key a { secret "` + testSecret + `"; };`, wantErr: "has no algorithm"},
		{name: "bad base64", in: `key a { algorithm hmac-sha256; secret "not*base64!"; };`, wantErr: "not valid base64"},
		{name: "missing semicolon", in: `key a { algorithm hmac-sha256 secret "` + testSecret + `"; };`, wantErr: `expected ";"`},
		{name: "unknown option", in: `key a { algorithm hmac-sha256; secert "` + testSecret + `"; };`, wantErr: "unknown key option"},
		{name: "unterminated string", in: `key a { algorithm hmac-sha256; secret "` + testSecret, wantErr: "unterminated quoted string"},
		{name: "other statement", in: `options { directory "/x"; };`, wantErr: "expected a key statement"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTSIGKey([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "c2VjcmV0") {
					t.Fatalf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if *got != tc.want {
				t.Fatalf("got %#v / %s, want name %q algorithm %q and the secret", got, got, tc.want.Name, tc.want.Algorithm)
			}
			if got.Secret != tc.want.Secret {
				t.Fatalf("secret differs from the file's")
			}
		})
	}
}

func TestLoadTSIGKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy.key")
	content := "key \"deploy-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadTSIGKeyFile(path)
	if err != nil || k.Name != "deploy-key." {
		t.Fatalf("LoadTSIGKeyFile(0600): got %v, %v; want key deploy-key.", k, err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o700 | 0o002} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTSIGKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: got %v, want an error naming the file and chmod 600", mode, err)
		}
	}
	if _, err := LoadTSIGKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatalf("missing file: got no error")
	}
}

func TestTSIGKeyFromSecretFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := TSIGKeyFromSecretFile("deploy-key", "", path)
	if err != nil || k.Algorithm != "hmac-sha256" || k.Secret != testSecret || k.Name != "deploy-key." {
		t.Fatalf("TSIGKeyFromSecretFile: got %v, %v; want deploy-key. hmac-sha256", k, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := TSIGKeyFromSecretFile("deploy-key", "", path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable secret file: got %v, want chmod 600 error", err)
	}

	t.Setenv("DANEHOOK_TEST_TSIG", testSecret)
	k, err = TSIGKeyFromEnv("deploy-key.", "hmac-sha384", "DANEHOOK_TEST_TSIG")
	if err != nil || k.Algorithm != "hmac-sha384" || k.Secret != testSecret {
		t.Fatalf("TSIGKeyFromEnv: got %v, %v", k, err)
	}
	t.Setenv("DANEHOOK_TEST_TSIG", "")
	if _, err := TSIGKeyFromEnv("deploy-key.", "", "DANEHOOK_TEST_TSIG"); err == nil || !strings.Contains(err.Error(), "DANEHOOK_TEST_TSIG") {
		t.Fatalf("empty env: got %v, want an error naming the variable", err)
	}
	t.Setenv("DANEHOOK_TEST_TSIG", "!!"+testSecret)
	if _, err := TSIGKeyFromEnv("deploy-key.", "", "DANEHOOK_TEST_TSIG"); err == nil || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("bad env secret: got %v, want an error without the secret", err)
	}
}

func TestTSIGKeyRedacts(t *testing.T) {
	k := &TSIGKey{Name: "deploy-key.", Algorithm: "hmac-sha256", Secret: testSecret}
	p := &RFC2136{Server: "127.0.0.1:53", Key: k}
	type wrapper struct{ Key TSIGKey }
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("provider", "key", k)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("provider", "key", *k)
	js, err := json.Marshal(wrapper{*k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", *k, *k, *k, *k), fmt.Sprintf("%+v %v", p, p),
		fmt.Sprintf("%+v %#v", wrapper{*k}, wrapper{*k}), logBuf.String(), string(js),
	}
	for _, out := range outputs {
		if strings.Contains(out, testSecret) {
			t.Fatalf("output %q contains the secret", out)
		}
	}
	if !strings.Contains(outputs[0], "deploy-key.") {
		t.Fatalf("String: got %q, want the key name", outputs[0])
	}
}

var secretRE = regexp.MustCompile(`(?i)secret\s*"([^"]{4,})"`)

// FuzzParseTSIGKey checks that ParseTSIGKey never panics, that a parsed key
// is normalised and valid, and that neither errors nor the printed key show
// the secret.
func FuzzParseTSIGKey(f *testing.F) {
	for _, s := range []string{
		"key \"deploy-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n",
		`key k. { algorithm hmac-sha512.; secret "` + testSecret + `"; };`,
		"/* c */ key \"a\" { secret \"" + testSecret + "\"; algorithm hmac-sha1; }; # x",
		`key a { algorithm hmac-sha256; secret "bad!"; };`,
		`key a { algorithm hmac-sha256; secert "` + testSecret + `"; };`,
		`key "a\"b" { algorithm hmac-md5; secret "` + testSecret + `"; };`,
		"",
		"/*",
		`"`,
		"key",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseTSIGKey(data)
		secrets := secretRE.FindAllSubmatch(data, -1)
		if err != nil {
			// Outside the secret literals the input may repeat the secret's
			// text (in the key name, say), which errors may quote.
			rest := string(secretRE.ReplaceAll(data, nil))
			for _, m := range secrets {
				if strings.Contains(err.Error(), string(m[1])) && !strings.Contains(rest, string(m[1])) {
					t.Fatalf("error %q contains a secret", err)
				}
			}
			return
		}
		if !strings.HasSuffix(k.Name, ".") || k.Name != strings.ToLower(k.Name) {
			t.Fatalf("name %q not absolute lower case", k.Name)
		}
		if _, ok := tsigAlgorithms[k.Algorithm]; !ok {
			t.Fatalf("algorithm %q not accepted", k.Algorithm)
		}
		if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || k.Secret == "" {
			t.Fatalf("secret not valid base64")
		}
		if len(k.Secret) >= 4 && strings.Contains(fmt.Sprintf("%v %+v %#v", *k, k, *k), k.Secret) &&
			!strings.Contains(k.Name+k.Algorithm, k.Secret) {
			t.Fatalf("printed key contains the secret")
		}
	})
}
