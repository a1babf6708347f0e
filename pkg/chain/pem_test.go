package chain_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
)

func TestParsePEMKeys(t *testing.T) {
	tests := []struct{ alg, enc string }{
		{"rsa", "pkcs8"},
		{"rsa", "pkcs1"},
		{"p256", "pkcs8"},
		{"p256", "sec1"},
		{"p256", "sec1params"},
		{"p384", "pkcs8"},
		{"p384", "sec1params"},
		{"ed25519", "pkcs8"},
	}
	for _, tt := range tests {
		t.Run(tt.alg+"/"+tt.enc, func(t *testing.T) {
			k := newKey(tt.alg)
			data := pemKey(k, tt.enc)
			b, err := chain.ParsePEM(data)
			if err != nil {
				t.Fatalf("ParsePEM: %v", err)
			}
			if len(b.PrivateKeys) != 1 || len(b.PrivateKeyBlocks) != 1 {
				t.Fatalf("got %d keys and %d key blocks, want 1 and 1", len(b.PrivateKeys), len(b.PrivateKeyBlocks))
			}
			if !samePub(b.PrivateKeys[0].Public(), k.Public()) {
				t.Errorf("got a different key back")
			}
			blk := b.PrivateKeyBlocks[0]
			if blk.Type != keyBlockType[tt.enc] {
				t.Errorf("got key block type %q, want %q", blk.Type, keyBlockType[tt.enc])
			}
			// The block holds the file's DER bytes unchanged.
			if !bytes.Contains(data, pem.EncodeToMemory(blk)) {
				t.Errorf("key block is not the one in the file")
			}
			if len(b.Certificates)+len(b.PublicKeys)+len(b.CSRs) != 0 {
				t.Errorf("got extra objects: %+v", b)
			}
		})
	}
}

func TestParsePEMObjects(t *testing.T) {
	root := newRoot("Test Root", "p256")
	leaf := root.issueLeaf("mail.example.test", "rsa")
	csrDER, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "mail.example.test"}}, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	spki := must(x509.MarshalPKIXPublicKey(leaf.Key.Public()))
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name                  string
		data                  []byte
		certs, pubs, csrs, ks int
	}{
		{"certificate", pemCerts(leaf.Cert), 1, 0, 0, 0},
		{"two certificates", pemCerts(leaf.Cert, root.Cert), 2, 0, 0, 0},
		{"public key", enc("PUBLIC KEY", spki), 0, 1, 0, 0},
		{"rsa public key", enc("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(leaf.Cert.PublicKey.(*rsa.PublicKey))), 0, 1, 0, 0},
		{"certificate request", enc("CERTIFICATE REQUEST", csrDER), 0, 0, 1, 0},
		{"new certificate request", enc("NEW CERTIFICATE REQUEST", csrDER), 0, 0, 1, 0},
		{"text around blocks (openssl x509 -text)",
			join([]byte("Certificate:\n    Data:\n        Version: 3 (0x2)\n"), pemCerts(leaf.Cert), []byte("trailing words\n")), 1, 0, 0, 0},
		{"CRLF line endings", bytes.ReplaceAll(join(pemKey(leaf.Key, "pkcs8"), pemCerts(leaf.Cert)), []byte("\n"), []byte("\r\n")), 1, 0, 0, 1},
		{"key and everything", join(pemKey(leaf.Key, "pkcs1"), pemCerts(leaf.Cert, root.Cert), enc("PUBLIC KEY", spki), enc("CERTIFICATE REQUEST", csrDER)), 2, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := chain.ParsePEM(tt.data)
			if err != nil {
				t.Fatalf("ParsePEM: %v", err)
			}
			got := []int{len(b.Certificates), len(b.PublicKeys), len(b.CSRs), len(b.PrivateKeys)}
			want := []int{tt.certs, tt.pubs, tt.csrs, tt.ks}
			if !equalInts(got, want) {
				t.Errorf("got certs, public keys, CSRs, private keys = %v, want %v", got, want)
			}
			for _, p := range b.PublicKeys {
				if !samePub(p, leaf.Key.Public()) {
					t.Errorf("got public key %T that is not the leaf's", p)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParsePEMErrors(t *testing.T) {
	root := newRoot("Test Root", "p256")
	certPEM := pemCerts(root.Cert)
	rsaKey := newKey("rsa")
	x25519 := must(ecdh.X25519().GenerateKey(rand.Reader))
	enc := func(typ string, der []byte, h map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: h})
	}
	p8 := must(x509.MarshalPKCS8PrivateKey(newKey("p256")))

	tests := []struct {
		name   string
		data   []byte
		wantIs error // nil: crypto/x509's own error will do
		wantIn []string
	}{
		{name: "empty", data: nil, wantIs: chain.ErrNoPEM},
		{name: "garbage", data: []byte("hello, world\n"), wantIs: chain.ErrNoPEM},
		{name: "DER certificate", data: root.Cert.Raw, wantIs: chain.ErrNoPEM},
		{name: "only EC PARAMETERS", data: enc("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}, nil), wantIs: chain.ErrNoPEM},
		{name: "unknown type", data: enc("DSA PRIVATE KEY", []byte{1, 2, 3}, nil), wantIs: chain.ErrUnsupportedBlock, wantIn: []string{`"DSA PRIVATE KEY"`, "block 1"}},
		{name: "CRL after a certificate", data: join(certPEM, enc("X509 CRL", []byte{1}, nil)), wantIs: chain.ErrUnsupportedBlock, wantIn: []string{`"X509 CRL"`, "block 2"}},
		{name: "encrypted PKCS#8", data: enc("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}, nil), wantIs: chain.ErrEncryptedKey},
		{name: "encrypted PKCS#1 (Proc-Type)", data: enc("RSA PRIVATE KEY", []byte{0x30, 0},
			map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}), wantIs: chain.ErrEncryptedKey},
		{name: "encrypted SEC1 (Proc-Type)", data: enc("EC PRIVATE KEY", []byte{0x30, 0},
			map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}), wantIs: chain.ErrEncryptedKey},
		{name: "truncated file", data: certPEM[:len(certPEM)/2], wantIs: chain.ErrMalformedPEM, wantIn: []string{`"CERTIFICATE"`, "line 1"}},
		{name: "broken block between good ones", data: join(certPEM, []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"), certPEM),
			wantIs: chain.ErrMalformedPEM, wantIn: []string{"block 2", "line " + itoa(1+bytes.Count(certPEM, []byte("\n")))}},
		{name: "bad certificate DER", data: enc("CERTIFICATE", []byte{0x30, 3, 1, 2, 3}, nil), wantIn: []string{"block 1", `"CERTIFICATE"`}},
		{name: "excess data after PKCS#8 key", data: enc("PRIVATE KEY", append(append([]byte{}, p8...), 0, 0), nil), wantIn: []string{"excess data"}},
		{name: "X25519 key cannot sign", data: enc("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(x25519)), nil), wantIn: []string{"cannot sign"}},
		{name: "PKCS#1 labelled PRIVATE KEY", data: enc("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey)), nil), wantIn: []string{`"PRIVATE KEY"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := chain.ParsePEM(tt.data)
			if err == nil {
				t.Fatalf("ParsePEM: got %+v, want an error", b)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %q, want one matching %q", err, tt.wantIs)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got error %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(dir, "good.pem", pemCerts(newRoot("Test Root", "p256").Cert))
	bad := writeFile(dir, "bad.pem", []byte("not pem"))
	dangling := filepath.Join(dir, "dangling.pem")
	if err := os.Symlink("../archive/gone1.pem", dangling); err != nil {
		t.Fatal(err)
	}

	if b, err := chain.ReadFile(good); err != nil || len(b.Certificates) != 1 {
		t.Fatalf("ReadFile(%q): got %v, %v, want one certificate", good, b, err)
	}
	tests := []struct {
		name   string
		path   string
		wantIs error
		wantIn []string
	}{
		{"missing", filepath.Join(dir, "missing.pem"), fs.ErrNotExist, []string{filepath.Join(dir, "missing.pem")}},
		{"dangling symlink", dangling, fs.ErrNotExist, []string{dangling, `symlink to "../archive/gone1.pem"`}},
		{"not PEM", bad, chain.ErrNoPEM, []string{bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chain.ReadFile(tt.path)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("got error %v, want one matching %v", err, tt.wantIs)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got error %q, want it to contain %q", err, s)
				}
			}
			if n := strings.Count(err.Error(), tt.path); n != 1 {
				t.Errorf("got error %q naming the file %d times, want once", err, n)
			}
		})
	}
}

func TestReadKeyEncodeKey(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"rsa", "p256", "ed25519"} {
		k := newKey(alg)
		data, err := chain.EncodeKey(k)
		if err != nil {
			t.Fatalf("%s: EncodeKey: %v", alg, err)
		}
		if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("%s: EncodeKey gives %q…, want a PKCS #8 PRIVATE KEY block", alg, data[:30])
		}
		got, err := chain.ReadKey(writeFile(dir, alg+".pem", data))
		if err != nil {
			t.Fatalf("%s: ReadKey: %v", alg, err)
		}
		if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Errorf("%s: ReadKey returned another key", alg)
		}
		if f := filepath.Join(dir, alg+".pem"); !chain.HoldsKey(f, k) || !chain.HoldsKey(f, k.Public()) || chain.HoldsKey(f, newKey(alg)) {
			t.Errorf("%s: HoldsKey does not tell the key from another", alg)
		}
	}
	if chain.HoldsKey(filepath.Join(dir, "missing.pem"), newKey("p256")) {
		t.Error("HoldsKey(missing file) = true")
	}
	two := writeFile(dir, "two.pem", append(pemKey(newKey("p256"), "pkcs8"), pemKey(newKey("p256"), "sec1")...))
	none := writeFile(dir, "none.pem", nil)
	for _, f := range []string{two, none, filepath.Join(dir, "missing.pem")} {
		if _, err := chain.ReadKey(f); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("ReadKey(%s) error %v, want one naming the file", filepath.Base(f), err)
		}
	}
}
