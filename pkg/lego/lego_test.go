package lego

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/tlsa"
)

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKey(t *testing.T, path string, k crypto.Signer) {
	t.Helper()
	data, err := chain.EncodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readCSR returns the CSR's key digest and names, checking its signature.
func readCSR(t *testing.T, path string) ([32]byte, []string) {
	t.Helper()
	b, err := chain.ReadFile(path)
	if err != nil || len(b.CSRs) != 1 {
		t.Fatalf("read CSR %s: %v (%d CSRs)", path, err, len(b.CSRs))
	}
	if err := b.CSRs[0].CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	d, err := tlsa.KeyDigest(b.CSRs[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return d, b.CSRs[0].DNSNames
}

func TestEnsureCSR(t *testing.T) {
	dir := t.TempDir()
	keyFile, csrFile := filepath.Join(dir, "mail.key"), filepath.Join(dir, "mail.csr")
	k1, k2 := newKey(t), newKey(t)
	d1, _ := tlsa.KeyDigest(k1)
	d2, _ := tlsa.KeyDigest(k2)
	writeKey(t, keyFile, k1)
	hosts := []string{"mail.example.com", "mx.example.com"}

	steps := []struct {
		name        string
		before      func()
		domains     []string
		wantChanged bool
		wantKey     [32]byte
		wantNames   []string
	}{
		{"no CSR yet", nil, hosts, true, d1, hosts},
		{"in sync", nil, hosts, false, d1, hosts},
		{"names in another order and case", nil, []string{"MX.example.com.", "mail.example.com"}, false, d1, hosts},
		{"fewer names asked", nil, hosts[:1], false, d1, hosts},
		{"host added keeps the others", nil, []string{"mail.example.com", "smtp.example.com"}, true, d1,
			[]string{"mail.example.com", "smtp.example.com", "mx.example.com"}},
		{"key rotated", func() { writeKey(t, keyFile, k2) }, hosts, true, d2, []string{"mail.example.com", "mx.example.com", "smtp.example.com"}},
		{"CSR corrupt", func() { os.WriteFile(csrFile, []byte("garbage"), 0o644) }, hosts, true, d2, hosts},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		ok, err := CheckCSR(keyFile, csrFile, s.domains)
		if err != nil || ok == s.wantChanged {
			t.Errorf("%s: CheckCSR = %v, %v; want %v", s.name, ok, err, !s.wantChanged)
		}
		changed, err := EnsureCSR(keyFile, csrFile, s.domains)
		if err != nil || changed != s.wantChanged {
			t.Fatalf("%s: EnsureCSR = %v, %v; want changed %v", s.name, changed, err, s.wantChanged)
		}
		d, names := readCSR(t, csrFile)
		if d != s.wantKey || !slices.Equal(names, s.wantNames) {
			t.Errorf("%s: CSR for key %x… names %q; want key %x… names %q", s.name, d[:4], names, s.wantKey[:4], s.wantNames)
		}
		if fi, err := os.Stat(csrFile); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: CSR mode %v, %v; want 0644", s.name, fi.Mode(), err)
		}
	}
}

func TestEnsureCSRErrors(t *testing.T) {
	dir := t.TempDir()
	keyFile, csrFile := filepath.Join(dir, "mail.key"), filepath.Join(dir, "mail.csr")
	if _, err := EnsureCSR(keyFile, csrFile, []string{"mail.example.com"}); err == nil {
		t.Error("EnsureCSR without a key file succeeded")
	}
	if _, err := CheckCSR(keyFile, csrFile, []string{"mail.example.com"}); err == nil {
		t.Error("CheckCSR without a key file succeeded")
	}
	writeKey(t, keyFile, newKey(t))
	if _, err := EnsureCSR(keyFile, csrFile, nil); err == nil {
		t.Error("EnsureCSR without domains succeeded")
	}
	if _, err := os.Stat(csrFile); err == nil {
		t.Error("a failed EnsureCSR wrote the CSR")
	}
}

func TestInstallKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "certificates", "mail.key")
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	cur, next := newKey(t), newKey(t)
	writeKey(t, keyFile, cur)
	if err := os.Chmod(keyFile, 0o644); err != nil { // as an older lego left it
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		changed, err := InstallKey(keyFile, next)
		if err != nil || changed != want {
			t.Fatalf("InstallKey #%d = %v, %v; want changed %v", i+1, changed, err, want)
		}
		got, err := chain.ReadKey(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		gd, _ := tlsa.KeyDigest(got)
		nd, _ := tlsa.KeyDigest(next)
		if gd != nd {
			t.Errorf("InstallKey #%d: key file holds another key", i+1)
		}
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("InstallKey #%d: key file mode %v, want 0600", i+1, fi.Mode().Perm())
		}
	}
	if _, err := InstallKey(filepath.Join(dir, "missing", "mail.key"), next); err == nil {
		t.Error("InstallKey into a missing directory succeeded")
	}
}

func TestKeyType(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	r1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		key  crypto.PublicKey
		want string
	}{
		{newKey(t), "EC256"}, {p384, "EC384"}, {p384.Public(), "EC384"}, {p521, ""},
		{r2048, "RSA2048"}, {r2048.Public(), "RSA2048"}, {r1024, ""}, {ed, ""}, {nil, ""},
	}
	for _, tt := range tests {
		if got := KeyType(tt.key); got != tt.want {
			t.Errorf("KeyType(%T) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
