package chain_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
)

// FuzzParsePEM checks that ParsePEM never panics, that a success always
// carries something, and that what it returns encodes back to PEM that
// parses to the same objects.
func FuzzParsePEM(f *testing.F) {
	h := newHierarchy("p256")
	rsaKey, edKey := newKey("rsa"), newKey("ed25519")
	csr := must(x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "mail.example.test"}}, h.leaf.Key))
	full := join(pemKey(h.leaf.Key, "sec1params"), pemCerts(h.leaf.Cert, h.inter.Cert, h.cross.Cert))
	for _, seed := range [][]byte{
		pemCerts(h.leaf.Cert),
		full,
		pemKey(rsaKey, "pkcs1"),
		pemKey(rsaKey, "pkcs8"),
		pemKey(edKey, "pkcs8"),
		pemKey(h.leaf.Key, "sec1"),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(h.leaf.Key.Public()))}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
		pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}),
		full[:len(full)/2],
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		[]byte("garbage\x00\xff-----BEGIN "),
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := chain.ParsePEM(data)
		if err != nil {
			if b != nil {
				t.Fatalf("got a bundle and error %v", err)
			}
			return
		}
		n := len(b.Certificates) + len(b.PrivateKeys) + len(b.PublicKeys) + len(b.CSRs)
		if n == 0 {
			t.Fatal("got an empty bundle and no error")
		}
		if len(b.PrivateKeys) != len(b.PrivateKeyBlocks) {
			t.Fatalf("got %d keys and %d key blocks", len(b.PrivateKeys), len(b.PrivateKeyBlocks))
		}
		var out bytes.Buffer
		for _, k := range b.PrivateKeyBlocks {
			_ = pem.Encode(&out, k)
		}
		for _, c := range b.Certificates {
			_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		for _, r := range b.CSRs {
			_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE REQUEST", Bytes: r.Raw})
		}
		if out.Len() == 0 {
			return // public keys only
		}
		again, err := chain.ParsePEM(out.Bytes())
		if err != nil {
			t.Fatalf("re-encoded bundle does not parse: %v", err)
		}
		if len(again.Certificates) != len(b.Certificates) || len(again.PrivateKeys) != len(b.PrivateKeys) || len(again.CSRs) != len(b.CSRs) {
			t.Fatalf("re-encoded bundle differs: %d/%d/%d, want %d/%d/%d", len(again.Certificates), len(again.PrivateKeys), len(again.CSRs),
				len(b.Certificates), len(b.PrivateKeys), len(b.CSRs))
		}
		for i, k := range b.PrivateKeys {
			if !samePub(k.Public(), again.PrivateKeys[i].Public()) {
				t.Fatalf("key %d changed on re-encoding", i)
			}
		}
	})
}

func BenchmarkParsePEM(b *testing.B) {
	h := newHierarchy("p256")
	data := join(pemKey(h.leaf.Key, "pkcs8"), pemCerts(h.leaf.Cert, h.inter.Cert, h.cross.Cert, h.oldRoot.Cert))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := chain.ParsePEM(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePEMSystemBundle parses the system CA bundle (about 150
// certificates on Debian), the largest PEM file danehook reads.
func BenchmarkParsePEMSystemBundle(b *testing.B) {
	data, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		b.Skip(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := chain.ParsePEM(data); err != nil {
			b.Fatal(err)
		}
	}
}
