package certbot

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
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

// newLineage lays out a certbot lineage "mail" with versions 1 to versions
// of its four files, key holding every privkey, and returns its live
// directory.
func newLineage(t *testing.T, key crypto.Signer, versions int) string {
	t.Helper()
	dir := t.TempDir()
	archive, live := filepath.Join(dir, "archive", "mail"), filepath.Join(dir, "live", "mail")
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	data, err := chain.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= versions; v++ {
		for _, kind := range []string{"cert", "chain", "fullchain", "privkey"} {
			content := []byte("placeholder\n")
			if kind == "privkey" {
				content = data
			}
			if err := os.WriteFile(filepath.Join(archive, kind+itoa(v)+".pem"), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, kind := range []string{"cert", "chain", "fullchain", "privkey"} {
		if err := os.Symlink(filepath.Join("..", "..", "archive", "mail", kind+itoa(versions)+".pem"), filepath.Join(live, kind+".pem")); err != nil {
			t.Fatal(err)
		}
	}
	return live
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSwapKey(t *testing.T) {
	cur, next := newKey(t), newKey(t)
	live := newLineage(t, cur, 3)
	want, _ := tlsa.KeyDigest(next)
	for i, wantChanged := range []bool{true, false} {
		changed, err := SwapKey(live, next)
		if err != nil || changed != wantChanged {
			t.Fatalf("SwapKey #%d = %v, %v; want changed %v", i+1, changed, err, wantChanged)
		}
		target, err := os.Readlink(filepath.Join(live, LiveKey))
		if err != nil || target != filepath.Join("..", "..", "archive", "mail", "privkey4.pem") {
			t.Errorf("SwapKey #%d: privkey.pem -> %q, %v; want ../../archive/mail/privkey4.pem", i+1, target, err)
		}
		k, err := chain.ReadKey(filepath.Join(live, LiveKey))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := tlsa.KeyDigest(k); got != want {
			t.Errorf("SwapKey #%d: live privkey.pem holds another key", i+1)
		}
		fi, err := os.Stat(filepath.Join(live, "..", "..", "archive", "mail", "privkey4.pem"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("privkey4.pem: %v, %v; want mode 0600", fi, err)
		}
	}
	// The certificate links are left alone.
	if target, _ := os.Readlink(filepath.Join(live, LiveCert)); target != filepath.Join("..", "..", "archive", "mail", "cert3.pem") {
		t.Errorf("cert.pem -> %q, want cert3.pem untouched", target)
	}
	// Another swap takes the next version again.
	third := newKey(t)
	if changed, err := SwapKey(live, third); err != nil || !changed {
		t.Fatalf("third SwapKey = %v, %v", changed, err)
	}
	if target, _ := os.Readlink(filepath.Join(live, LiveKey)); filepath.Base(target) != "privkey5.pem" {
		t.Errorf("after a second swap privkey.pem -> %q, want privkey5.pem", target)
	}
}

func TestSwapKeyErrors(t *testing.T) {
	key := newKey(t)
	// A live directory whose privkey.pem is a plain file.
	live := t.TempDir()
	data, _ := chain.EncodeKey(newKey(t))
	if err := os.WriteFile(filepath.Join(live, LiveKey), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SwapKey(live, key); err == nil {
		t.Error("SwapKey on a plain privkey.pem succeeded")
	}
	// No live directory at all.
	if _, err := SwapKey(filepath.Join(t.TempDir(), "missing"), key); err == nil {
		t.Error("SwapKey without a live directory succeeded")
	}
}

func TestLineageName(t *testing.T) {
	for in, want := range map[string]string{"/etc/letsencrypt/live/mail": "mail", "/etc/letsencrypt/live/mail/": "mail", "live/mx.example.com": "mx.example.com"} {
		if got := LineageName(in); got != want {
			t.Errorf("LineageName(%q) = %q, want %q", in, got, want)
		}
	}
}
