package chain_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
)

func TestLoad(t *testing.T) {
	type layout func(dir string, h *hierarchy, keyPEM []byte) (keyFile string, certFiles []string)
	tests := []struct {
		name, alg, enc string
		layout         layout
		want           func(h *hierarchy) []*x509.Certificate
		wantLeafFile   string
	}{
		{"key file and bundle, bundle shuffled", "p256", "sec1params",
			func(dir string, h *hierarchy, k []byte) (string, []string) {
				return writeFile(dir, "key.pem", k), []string{writeFile(dir, "bundle.pem", pemCerts(h.cross.Cert, h.leaf.Cert, h.inter.Cert))}
			},
			func(h *hierarchy) []*x509.Certificate {
				return []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert}
			}, "bundle.pem"},
		{"chain file before leaf file", "rsa", "pkcs1",
			func(dir string, h *hierarchy, k []byte) (string, []string) {
				return writeFile(dir, "key.pem", k), []string{
					writeFile(dir, "chain.pem", pemCerts(h.inter.Cert, h.cross.Cert)),
					writeFile(dir, "cert.pem", pemCerts(h.leaf.Cert)),
				}
			},
			func(h *hierarchy) []*x509.Certificate {
				return []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert}
			}, "cert.pem"},
		{"overlapping files (cert, chain and fullchain)", "p384", "pkcs8",
			func(dir string, h *hierarchy, k []byte) (string, []string) {
				return writeFile(dir, "key.pem", k), []string{
					writeFile(dir, "fullchain.pem", pemCerts(h.leaf.Cert, h.inter.Cert)),
					writeFile(dir, "chain.pem", pemCerts(h.inter.Cert)),
					writeFile(dir, "cert.pem", pemCerts(h.leaf.Cert)),
				}
			},
			func(h *hierarchy) []*x509.Certificate { return []*x509.Certificate{h.leaf.Cert, h.inter.Cert} }, "fullchain.pem"},
		{"one file with certificates then key", "ed25519", "pkcs8",
			func(dir string, h *hierarchy, k []byte) (string, []string) {
				return writeFile(dir, "all.pem", join(pemCerts(h.inter.Cert, h.leaf.Cert), k)), nil
			},
			func(h *hierarchy) []*x509.Certificate { return []*x509.Certificate{h.leaf.Cert, h.inter.Cert} }, "all.pem"},
		{"key file also passed as certificate file", "p256", "pkcs8",
			func(dir string, h *hierarchy, k []byte) (string, []string) {
				f := writeFile(dir, "all.pem", join(k, pemCerts(h.leaf.Cert, h.inter.Cert, h.cross.Cert, h.oldRoot.Cert)))
				return f, []string{f}
			},
			func(h *hierarchy) []*x509.Certificate {
				return []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert, h.oldRoot.Cert}
			}, "all.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHierarchy(tt.alg)
			keyFile, certFiles := tt.layout(dir, h, pemKey(h.leaf.Key, tt.enc))
			c, err := chain.Load(keyFile, certFiles...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got, want := c.Served(), tt.want(h); !sameCerts(got, want) {
				t.Errorf("got served %v, want %v", names(got), names(want))
			}
			if !samePub(c.Key.Public(), h.leaf.Key.Public()) {
				t.Errorf("got a different key")
			}
			if c.KeyBlock == nil || c.KeyBlock.Type != keyBlockType[tt.enc] {
				t.Errorf("got key block %v, want type %q", c.KeyBlock, keyBlockType[tt.enc])
			}
			if c.KeyFile != keyFile || filepath.Base(c.LeafFile) != tt.wantLeafFile {
				t.Errorf("got KeyFile %q LeafFile %q, want %q and .../%s", c.KeyFile, c.LeafFile, keyFile, tt.wantLeafFile)
			}
			if err := c.CheckKey(); err != nil {
				t.Errorf("CheckKey: %v", err)
			}
		})
	}
}

func TestAlgorithm(t *testing.T) {
	root := newRoot("Test Root", "p256")
	for alg, want := range map[string]string{"rsa": "rsa", "p256": "ecdsa", "p384": "ecdsa", "ed25519": "ed25519"} {
		leaf := root.issueLeaf("mail.example.test", alg)
		c := &chain.Chain{Key: leaf.Key, Leaf: leaf.Cert}
		if got := c.Algorithm(); got != want {
			t.Errorf("%s: got Algorithm() %q, want %q", alg, got, want)
		}
		if got := (&chain.Chain{Leaf: leaf.Cert}).Algorithm(); got != want {
			t.Errorf("%s without key: got Algorithm() %q, want %q", alg, got, want)
		}
		if got := chain.KeyAlgorithm(leaf.Key.Public()); got != want {
			t.Errorf("%s: got KeyAlgorithm(public key) %q, want %q", alg, got, want)
		}
	}
	if got := chain.KeyAlgorithm(nil); got != "" {
		t.Errorf("KeyAlgorithm(nil) = %q, want \"\"", got)
	}
	if got := (&chain.Chain{}).Algorithm(); got != "" {
		t.Errorf("empty chain: Algorithm() = %q, want \"\"", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	h := newHierarchy("p256")
	other := newKey("p256")
	otherRoot := newRoot("Test Other Root", "p256")
	spki := func(c *x509.Certificate) string {
		s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(s[:])
	}

	keyFile := writeFile(dir, "key.pem", pemKey(h.leaf.Key, "pkcs8"))
	otherKeyFile := writeFile(dir, "other-key.pem", pemKey(other, "pkcs8"))
	interKeyFile := writeFile(dir, "inter-key.pem", pemKey(h.inter.Key, "pkcs8"))
	fullchain := writeFile(dir, "fullchain.pem", pemCerts(h.inter.Cert, h.leaf.Cert)) // leaf second on purpose
	twoKeys := writeFile(dir, "two-keys.pem", join(pemKey(h.leaf.Key, "pkcs8"), pemKey(other, "pkcs8")))
	sameKeyTwice := writeFile(dir, "same-key-twice.pem", join(pemKey(h.leaf.Key, "pkcs8"), pemKey(h.leaf.Key, "sec1")))
	certOnly := writeFile(dir, "cert-only.pem", pemCerts(h.leaf.Cert))
	certWithOtherKey := writeFile(dir, "cert-other-key.pem", join(pemCerts(h.leaf.Cert), pemKey(other, "pkcs8")))
	keyOnlyChain := writeFile(dir, "csr-only.pem", pemKey(h.leaf.Key, "pkcs8"))
	stray := writeFile(dir, "stray.pem", pemCerts(h.leaf.Cert, h.inter.Cert, otherRoot.Cert))
	encrypted := writeFile(dir, "enc.pem", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name     string
		keyFile  string
		certs    []string
		wantIs   error
		wantIn   []string
		mismatch bool
	}{
		{"key does not match leaf", otherKeyFile, []string{fullchain}, chain.ErrKeyMismatch,
			[]string{otherKeyFile, fullchain, "mail.example.test", spki(h.leaf.Cert)}, true},
		{"key of the intermediate", interKeyFile, []string{fullchain}, chain.ErrKeyMismatch,
			[]string{interKeyFile, fullchain, "mail.example.test"}, true},
		{"key file without key", certOnly, []string{fullchain}, chain.ErrNoKey, []string{certOnly}, false},
		{"key file with two keys", twoKeys, []string{fullchain}, nil, []string{twoKeys, "2 different private keys"}, false},
		{"certificate file with another key", keyFile, []string{certWithOtherKey}, nil, []string{certWithOtherKey, keyFile}, false},
		{"no certificates", keyFile, []string{keyOnlyChain}, chain.ErrNoCertificate, []string{keyFile, keyOnlyChain}, false},
		{"stray certificate", keyFile, []string{stray}, chain.ErrUnrelated, []string{"Test Other Root", stray}, false},
		{"encrypted key", encrypted, []string{fullchain}, chain.ErrEncryptedKey, []string{encrypted}, false},
		{"missing key file", missing, []string{fullchain}, fs.ErrNotExist, []string{missing}, false},
		{"missing certificate file", keyFile, []string{fullchain, missing}, fs.ErrNotExist, []string{missing}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chain.Load(tt.keyFile, tt.certs...)
			if err == nil {
				t.Fatalf("Load: got chain %v, want an error", names(c.Served()))
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %q, want one matching %q", err, tt.wantIs)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got error %q, want it to contain %q", err, s)
				}
			}
			var km *chain.KeyMismatchError
			if got := errors.As(err, &km); got != tt.mismatch {
				t.Errorf("got *KeyMismatchError %v, want %v (error %q)", got, tt.mismatch, err)
			}
			if km != nil && (km.KeyFile != tt.keyFile || km.CertFile != fullchain) {
				t.Errorf("got KeyFile %q CertFile %q, want %q and %q", km.KeyFile, km.CertFile, tt.keyFile, fullchain)
			}
		})
	}

	// The same key twice (two encodings) is one key.
	if _, err := chain.Load(sameKeyTwice, fullchain); err != nil {
		t.Errorf("Load with the same key twice: %v", err)
	}
}

func TestCheckKey(t *testing.T) {
	dir := t.TempDir()
	h := newHierarchy("p256")
	c, err := chain.Load(writeFile(dir, "key.pem", pemKey(h.leaf.Key, "pkcs8")), writeFile(dir, "cert.pem", pemCerts(h.leaf.Cert, h.inter.Cert)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckKey(); err != nil {
		t.Fatalf("CheckKey: %v", err)
	}
	c.Key = newKey("p256")
	err = c.CheckKey()
	var km *chain.KeyMismatchError
	if !errors.As(err, &km) || !errors.Is(err, chain.ErrKeyMismatch) {
		t.Fatalf("CheckKey with another key: got %v, want a *KeyMismatchError", err)
	}
	for _, s := range []string{filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("got error %q, want it to name %q", err, s)
		}
	}
	if err := (&chain.Chain{Leaf: h.leaf.Cert}).CheckKey(); !errors.Is(err, chain.ErrNoKey) {
		t.Errorf("CheckKey without key: got %v, want ErrNoKey", err)
	}
	if err := (&chain.Chain{Key: h.leaf.Key}).CheckKey(); !errors.Is(err, chain.ErrNoCertificate) {
		t.Errorf("CheckKey without leaf: got %v, want ErrNoCertificate", err)
	}
}

func TestCertbotLineage(t *testing.T) {
	dir := t.TempDir()
	h := newHierarchy("p256")
	// Renewal 2 reused the key (new leaf); renewal 3 got a new key.
	leaf2 := &ca{Cert: sign(template("mail.example.test", false), h.inter, h.leaf.Key.Public()), Key: h.leaf.Key}
	leaf3 := h.inter.issueLeaf("mail.example.test", "p256")
	chainPEM := pemCerts(h.inter.Cert, h.cross.Cert)
	live := certbotLineage(dir, "mail",
		[3][]byte{pemKey(h.leaf.Key, "pkcs8"), pemCerts(h.leaf.Cert), chainPEM},
		[3][]byte{pemKey(leaf2.Key, "pkcs8"), pemCerts(leaf2.Cert), chainPEM},
		[3][]byte{pemKey(leaf3.Key, "pkcs8"), pemCerts(leaf3.Cert), chainPEM},
	)
	privkey, fullchain := filepath.Join(live, "privkey.pem"), filepath.Join(live, "fullchain.pem")

	t.Run("current version", func(t *testing.T) {
		c, err := chain.FromCertbotLineage(live)
		if err != nil {
			t.Fatal(err)
		}
		if want := []*x509.Certificate{leaf3.Cert, h.inter.Cert, h.cross.Cert}; !sameCerts(c.Served(), want) {
			t.Errorf("got %v, want %v", names(c.Served()), names(want))
		}
		if c.KeyFile != privkey || c.LeafFile != fullchain {
			t.Errorf("got KeyFile %q LeafFile %q, want the live paths %q and %q", c.KeyFile, c.LeafFile, privkey, fullchain)
		}
	})
	t.Run("reused key", func(t *testing.T) {
		relink(live, "privkey", 2)
		relink(live, "fullchain", 2)
		c, err := chain.FromCertbotLineage(live)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Leaf.Raw, leaf2.Cert.Raw) {
			t.Errorf("got leaf serial %v, want %v", c.Leaf.SerialNumber, leaf2.Cert.SerialNumber)
		}
	})
	t.Run("links half updated: new key, old certificate", func(t *testing.T) {
		relink(live, "privkey", 3)
		relink(live, "fullchain", 2)
		_, err := chain.FromCertbotLineage(live)
		var km *chain.KeyMismatchError
		if !errors.As(err, &km) {
			t.Fatalf("got %v, want a *KeyMismatchError", err)
		}
		if km.KeyFile != privkey || km.CertFile != fullchain {
			t.Errorf("got KeyFile %q CertFile %q, want %q and %q", km.KeyFile, km.CertFile, privkey, fullchain)
		}
	})
	t.Run("dangling link", func(t *testing.T) {
		relink(live, "privkey", 3)
		relink(live, "fullchain", 9)
		_, err := chain.FromCertbotLineage(live)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "fullchain9.pem") || !strings.Contains(err.Error(), fullchain) {
			t.Errorf("got %v, want a not-exist error naming %q and its target", err, fullchain)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := chain.FromCertbotLineage(filepath.Join(dir, "live", "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want a not-exist error", err)
		}
	})
}

func TestLego(t *testing.T) {
	h := newHierarchy("p256")
	key := pemKey(h.leaf.Key, "pkcs8") // lego writes PKCS #8
	tests := []struct {
		name   string
		files  map[string][]byte
		cert   string
		key    string
		issuer string
		want   []*x509.Certificate
	}{
		{"bundle and issuer file",
			map[string][]byte{"c.crt": pemCerts(h.leaf.Cert, h.inter.Cert), "c.issuer.crt": pemCerts(h.inter.Cert), "c.key": key},
			"c.crt", "c.key", "c.issuer.crt", []*x509.Certificate{h.leaf.Cert, h.inter.Cert}},
		{"--no-bundle with issuer file",
			map[string][]byte{"c.crt": pemCerts(h.leaf.Cert), "c.issuer.crt": pemCerts(h.inter.Cert, h.cross.Cert), "c.key": key},
			"c.crt", "c.key", "c.issuer.crt", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert}},
		{"bundle, no issuer file",
			map[string][]byte{"c.crt": pemCerts(h.leaf.Cert, h.inter.Cert), "c.key": key},
			"c.crt", "c.key", "", []*x509.Certificate{h.leaf.Cert, h.inter.Cert}},
		{"--no-bundle alone serves the leaf only",
			map[string][]byte{"c.crt": pemCerts(h.leaf.Cert), "c.key": key},
			"c.crt", "c.key", "", []*x509.Certificate{h.leaf.Cert}},
		{"--pem file (certificates and key)",
			map[string][]byte{"c.pem": join(pemCerts(h.leaf.Cert, h.inter.Cert), key)},
			"", "c.pem", "", []*x509.Certificate{h.leaf.Cert, h.inter.Cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certificates")
			for name, data := range tt.files {
				writeFile(dir, name, data)
			}
			p := func(n string) string {
				if n == "" {
					return ""
				}
				return filepath.Join(dir, n)
			}
			c, err := chain.FromLego(p(tt.cert), p(tt.key), p(tt.issuer))
			if err != nil {
				t.Fatal(err)
			}
			if !sameCerts(c.Served(), tt.want) {
				t.Errorf("got %v, want %v", names(c.Served()), names(tt.want))
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct{ alg, enc string }{
		{"rsa", "pkcs1"}, {"rsa", "pkcs8"}, {"p256", "sec1params"}, {"p256", "pkcs8"}, {"p384", "sec1"}, {"ed25519", "pkcs8"},
	}
	for _, tt := range tests {
		for _, keep := range []bool{true, false} {
			name := tt.alg + "/" + tt.enc + "/as PKCS8"
			wantType := "PRIVATE KEY"
			if keep {
				name, wantType = tt.alg+"/"+tt.enc+"/original", keyBlockType[tt.enc]
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				h := newHierarchy(tt.alg)
				keyPEM := pemKey(h.leaf.Key, tt.enc)
				c, err := chain.Load(writeFile(dir, "key.pem", keyPEM), writeFile(dir, "fullchain.pem", pemCerts(h.leaf.Cert, h.inter.Cert, h.cross.Cert)))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.AppendTA(chain.TARoot, chain.NewRootStore(h.oldRoot.Cert)); err != nil {
					t.Fatal(err)
				}
				if !keep {
					c.KeyBlock = nil
				}
				served := filepath.Join(dir, "served-"+c.Algorithm()+".pem")
				if err := c.WriteFile(served); err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(served)
				if err != nil {
					t.Fatal(err)
				}
				// Postfix wants the key first.
				if prefix := "-----BEGIN " + wantType + "-----\n"; !strings.HasPrefix(string(data), prefix) {
					t.Errorf("served file starts %q, want %q", data[:min(40, len(data))], prefix)
				}
				b, err := chain.ParsePEM(data)
				if err != nil {
					t.Fatal(err)
				}
				if len(b.PrivateKeys) != 1 || !samePub(b.PrivateKeys[0].Public(), h.leaf.Key.Public()) {
					t.Errorf("got %d keys back, want the leaf's key", len(b.PrivateKeys))
				}
				if keep && !bytes.Contains(keyPEM, pem.EncodeToMemory(b.PrivateKeyBlocks[0])) {
					t.Errorf("key block changed on the way through")
				}
				want := []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert, h.oldRoot.Cert}
				if !sameCerts(b.Certificates, want) {
					t.Errorf("got certificates %v, want %v", names(b.Certificates), names(want))
				}
				again, err := chain.Load(served, served)
				if err != nil {
					t.Fatalf("Load of the served file: %v", err)
				}
				if !sameCerts(again.Served(), want) {
					t.Errorf("reloaded: got %v, want %v", names(again.Served()), names(want))
				}
			})
		}
	}
}

func TestPEMRefusesBadKey(t *testing.T) {
	dir := t.TempDir()
	h := newHierarchy("p256")
	other := newKey("p256")
	otherBlock := must(chain.ParsePEM(pemKey(other, "pkcs8"))).PrivateKeyBlocks[0]
	tests := []struct {
		name   string
		c      *chain.Chain
		wantIs error
	}{
		{"key of another certificate", &chain.Chain{Key: other, Leaf: h.leaf.Cert}, chain.ErrKeyMismatch},
		{"key block of another key", &chain.Chain{Key: h.leaf.Key, KeyBlock: otherBlock, Leaf: h.leaf.Cert}, nil},
		{"no key", &chain.Chain{Leaf: h.leaf.Cert}, chain.ErrNoKey},
		{"no leaf", &chain.Chain{Key: h.leaf.Key}, chain.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if data, err := tt.c.PEM(); err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Errorf("PEM: got %d bytes, error %v; want an error matching %v", len(data), err, tt.wantIs)
			}
			p := filepath.Join(dir, "served.pem")
			if err := tt.c.WriteFile(p); err == nil {
				t.Errorf("WriteFile: got no error")
			}
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("WriteFile left %q behind (stat: %v)", p, err)
			}
		})
	}
}
