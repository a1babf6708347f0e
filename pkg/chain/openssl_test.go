package chain_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/chain"
)

// TestOpenSSLKeys parses keys as the openssl command line writes them.
func TestOpenSSLKeys(t *testing.T) {
	testenv.Require(t, "openssl")
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string // "OUT" is replaced by the output file
		wantType string
		wantIs   error
	}{
		{"genpkey rsa (PKCS#8)", []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "OUT"}, "PRIVATE KEY", nil},
		{"genrsa -traditional (PKCS#1)", []string{"genrsa", "-traditional", "-out", "OUT", "2048"}, "RSA PRIVATE KEY", nil},
		{"ecparam -genkey (EC PARAMETERS + SEC1)", []string{"ecparam", "-name", "prime256v1", "-genkey", "-out", "OUT"}, "EC PRIVATE KEY", nil},
		{"genpkey P-384 (PKCS#8)", []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "OUT"}, "PRIVATE KEY", nil},
		{"genpkey ed25519", []string{"genpkey", "-algorithm", "ed25519", "-out", "OUT"}, "PRIVATE KEY", nil},
		{"genpkey encrypted", []string{"genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:secret", "-out", "OUT"}, "", chain.ErrEncryptedKey},
		{"genrsa -traditional encrypted (Proc-Type)", []string{"genrsa", "-traditional", "-aes128", "-passout", "pass:secret", "-out", "OUT", "2048"}, "", chain.ErrEncryptedKey},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "key"+itoa(i)+".pem")
			args := append([]string(nil), tt.args...)
			for j := range args {
				if args[j] == "OUT" {
					args[j] = out
				}
			}
			testenv.OpenSSL(t, nil, args...)
			b, err := chain.ReadFile(out)
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("got %v, want an error matching %q", err, tt.wantIs)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q mentions the passphrase", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.PrivateKeys) != 1 || b.PrivateKeyBlocks[0].Type != tt.wantType {
				t.Fatalf("got %d keys, block %v; want one %q", len(b.PrivateKeys), b.PrivateKeyBlocks, tt.wantType)
			}
			// openssl's view of the public key equals ours.
			spki := testenv.OpenSSL(t, nil, "pkey", "-in", out, "-pubout", "-outform", "DER")
			if want := must(x509.MarshalPKIXPublicKey(b.PrivateKeys[0].Public())); !bytes.Equal(spki, want) {
				t.Errorf("openssl and Go disagree on the public key")
			}
		})
	}
}

// TestOpenSSLReadsServedFile checks the served file with openssl: the key
// is the leaf's, the certificates come in the order written, and the chain
// verifies up to the trust anchor.
func TestOpenSSLReadsServedFile(t *testing.T) {
	testenv.Require(t, "openssl")
	for _, alg := range []string{"rsa", "p256", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			h := newHierarchy(alg)
			c, err := chain.Load(writeFile(dir, "key.pem", pemKey(h.leaf.Key, "pkcs8")),
				writeFile(dir, "fullchain.pem", pemCerts(h.cross.Cert, h.inter.Cert, h.leaf.Cert)))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AppendTA(chain.TARoot, chain.NewRootStore(h.oldRoot.Cert)); err != nil {
				t.Fatal(err)
			}
			served := filepath.Join(dir, "served.pem")
			if err := c.WriteFile(served); err != nil {
				t.Fatal(err)
			}
			spki := testenv.OpenSSL(t, nil, "pkey", "-in", served, "-pubout", "-outform", "DER")
			if !bytes.Equal(spki, h.leaf.Cert.RawSubjectPublicKeyInfo) {
				t.Errorf("openssl reads a key from %q that is not the leaf's", served)
			}
			p7 := testenv.OpenSSL(t, nil, "crl2pkcs7", "-nocrl", "-certfile", served)
			subjects := testenv.OpenSSL(t, p7, "pkcs7", "-print_certs", "-noout")
			var got []string
			for _, line := range strings.Split(string(subjects), "\n") {
				if s, ok := strings.CutPrefix(line, "subject="); ok {
					_, cn, _ := strings.Cut(s, "CN = ")
					got = append(got, cn)
				}
			}
			if want := names(c.Served()); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("openssl sees certificates %v, want %v", got, want)
			}
			// Verify the leaf against the TA with the served issuers as untrusted.
			ta := writeFile(dir, "ta.pem", pemCerts(c.TA))
			untrusted := writeFile(dir, "issuers.pem", pemCerts(c.Issuers...))
			leaf := writeFile(dir, "leaf.pem", pemCerts(c.Leaf))
			if out := testenv.OpenSSL(t, nil, "verify", "-CAfile", ta, "-untrusted", untrusted, leaf); !bytes.Contains(out, []byte("OK")) {
				t.Errorf("openssl verify: %s", out)
			}
		})
	}
}
