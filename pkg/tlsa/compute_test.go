package tlsa

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/miekg/dns"
)

// TestFromCertificateOpenSSL cross-checks every selector and digest against
// the openssl CLI:
//
//	openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
//	openssl x509 -outform DER | sha256sum
func TestFromCertificateOpenSSL(t *testing.T) {
	testenv.Require(t, "openssl")
	for _, kind := range keyKinds {
		t.Run(kind, func(t *testing.T) {
			key := newKey(t, kind)
			cert := newCert(t, key, certOpts{cn: "mail.example.com", dns: []string{"mail.example.com"}}, nil, nil)
			certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
			path := filepath.Join(t.TempDir(), "cert.pem")
			if err := os.WriteFile(path, certPEM, 0o600); err != nil {
				t.Fatal(err)
			}

			pubPEM := testenv.OpenSSL(t, nil, "x509", "-in", path, "-pubkey", "-noout")
			spki := testenv.OpenSSL(t, pubPEM, "pkey", "-pubin", "-outform", "DER")
			certDER := testenv.OpenSSL(t, nil, "x509", "-in", path, "-outform", "DER")
			want := map[[2]uint8]string{}
			for sel, content := range map[uint8][]byte{SelectorCert: certDER, SelectorSPKI: spki} {
				for mt, alg := range map[uint8]string{MatchSHA256: "-sha256", MatchSHA512: "-sha512"} {
					out := string(testenv.OpenSSL(t, content, "dgst", alg, "-r"))
					want[[2]uint8{sel, mt}] = strings.Fields(out)[0]
				}
				want[[2]uint8{sel, MatchFull}] = hex.EncodeToString(content)
			}

			for sm, w := range want {
				for _, usage := range []uint8{0, 1, 2, 3} {
					r, err := FromCertificate(cert, usage, sm[0], sm[1])
					if err != nil {
						t.Fatalf("FromCertificate(%d %d %d): %v", usage, sm[0], sm[1], err)
					}
					if got := hex.EncodeToString(r.Data); got != w {
						t.Errorf("FromCertificate(%d %d %d) = %s, want (openssl) %s", usage, sm[0], sm[1], got, w)
					}
					if r.Usage != usage || r.Selector != sm[0] || r.MatchingType != sm[1] {
						t.Errorf("FromCertificate(%d %d %d) fields = %d %d %d", usage, sm[0], sm[1], r.Usage, r.Selector, r.MatchingType)
					}
					// miekg/dns computes the same association data.
					var rr dns.TLSA
					if err := rr.Sign(int(usage), int(sm[0]), int(sm[1]), cert); err != nil {
						t.Fatalf("dns.TLSA.Sign: %v", err)
					}
					if rr.Certificate != w {
						t.Errorf("dns.TLSA.Sign(%d %d %d) = %s, want %s", usage, sm[0], sm[1], rr.Certificate, w)
					}
				}
				if sm[0] != SelectorSPKI {
					continue
				}
				// Keys give the same selector 1 records as their certificate.
				for name, k := range map[string]any{"private": key, "public": key.Public()} {
					r, err := FromPublicKey(k, UsageDANEEE, sm[1])
					if err != nil {
						t.Fatalf("FromPublicKey(%s, 3 1 %d): %v", name, sm[1], err)
					}
					if got := hex.EncodeToString(r.Data); got != w {
						t.Errorf("FromPublicKey(%s, 3 1 %d) = %s, want (openssl) %s", name, sm[1], got, w)
					}
				}
			}
		})
	}
}

// TestISRGRootX1 checks the well-known 2 1 1 record of Let's Encrypt's root
// from the system trust store.
func TestISRGRootX1(t *testing.T) {
	const path = "/etc/ssl/certs/ISRG_Root_X1.pem"
	const want = "2 1 1 0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3"
	data, err := os.ReadFile(path)
	if err != nil {
		testenv.Missing(t, path+" (install ca-certificates): "+err.Error())
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r, err := FromCertificate(cert, UsageDANETA, SelectorSPKI, MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.String(); got != want {
		t.Errorf("ISRG Root X1: got %q, want %q", got, want)
	}
	if got, err := FromPublicKey(cert.PublicKey, UsageDANETA, MatchSHA256); err != nil || !got.Equal(r) {
		t.Errorf("FromPublicKey(ISRG Root X1) = %v, %v; want %v", got, err, r)
	}
}

// TestECDSANeverEmptyDigest feeds every form an ECDSA key can take and checks
// the result is either the right digest or an error, never the digest of
// nothing.
func TestECDSANeverEmptyDigest(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		want, err := FromSPKI(der, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		forms := map[string]any{
			"*PrivateKey": k, "PrivateKey": *k, "*PublicKey": &k.PublicKey, "PublicKey": k.PublicKey,
			"Public()": k.Public(),
		}
		for name, key := range forms {
			for _, mt := range []uint8{MatchSHA256, MatchSHA512} {
				r, err := FromPublicKey(key, UsageDANEEE, mt)
				if err != nil {
					t.Errorf("%s %s: FromPublicKey: %v", curve.Params().Name, name, err)
					continue
				}
				if bytes.Equal(r.Data, emptySHA256[:]) || bytes.Equal(r.Data, emptySHA512[:]) {
					t.Fatalf("%s %s: got the digest of empty input", curve.Params().Name, name)
				}
				if mt == MatchSHA256 && !r.Equal(want) {
					t.Errorf("%s %s: got %v, want %v", curve.Params().Name, name, r, want)
				}
			}
		}
	}
	broken := map[string]any{
		"zero PublicKey":  ecdsa.PublicKey{},
		"zero *PublicKey": &ecdsa.PublicKey{},
		//lint:ignore SA1019 a broken key can only be built from raw coordinates
		"no curve":         &ecdsa.PublicKey{X: big.NewInt(1), Y: big.NewInt(1)},
		"zero *PrivateKey": &ecdsa.PrivateKey{},
		"nil *PublicKey":   (*ecdsa.PublicKey)(nil),
	}
	for name, key := range broken {
		r, err := FromPublicKey(key, UsageDANEEE, MatchSHA256)
		if err == nil {
			t.Errorf("%s: got %v, want an error", name, r)
		}
	}
}

func TestFromErrors(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name    string
		f       func() (Record, error)
		isEmpty bool
	}{
		{"usage 4", func() (Record, error) { return FromCertificate(p.leaf, 4, 1, 1) }, false},
		{"selector 2", func() (Record, error) { return FromCertificate(p.leaf, 3, 2, 1) }, false},
		{"mtype 3", func() (Record, error) { return FromCertificate(p.leaf, 3, 1, 3) }, false},
		{"nil cert", func() (Record, error) { return FromCertificate(nil, 3, 1, 1) }, false},
		{"unparsed cert", func() (Record, error) {
			return FromCertificate(&x509.Certificate{PublicKey: p.leafKey.Public()}, 3, 1, 1)
		}, true},
		{"unparsed cert full", func() (Record, error) { return FromCertificate(&x509.Certificate{}, 3, 0, 2) }, true},
		{"nil key", func() (Record, error) { return FromPublicKey(nil, 3, 1) }, false},
		{"unsupported key", func() (Record, error) { return FromPublicKey("key", 3, 1) }, false},
		{"short ed25519", func() (Record, error) { return FromPublicKey(ed25519.PublicKey{1, 2}, 3, 1) }, false},
		{"rsa without modulus", func() (Record, error) { return FromPublicKey(&rsa.PublicKey{}, 3, 1) }, false},
		{"key mtype 3", func() (Record, error) { return FromPublicKey(p.leafKey, 3, 3) }, false},
		{"key usage 9", func() (Record, error) { return FromPublicKey(p.leafKey, 9, 1) }, false},
		{"empty spki", func() (Record, error) { return FromSPKI(nil, 3, 1) }, true},
		{"spki not DER", func() (Record, error) { return FromSPKI([]byte("hello"), 3, 1) }, false},
		{"nil csr", func() (Record, error) { return FromCSR(nil, 3, 1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.f()
			if err == nil {
				t.Fatalf("got %v, want an error", r)
			}
			if got := errors.Is(err, ErrEmptyDigest); got != tt.isEmpty {
				t.Errorf("errors.Is(%v, ErrEmptyDigest) = %v, want %v", err, got, tt.isEmpty)
			}
		})
	}
}

func TestFromCSR(t *testing.T) {
	for _, kind := range keyKinds {
		t.Run(kind, func(t *testing.T) {
			key := newKey(t, kind)
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
				Subject: pkix.Name{CommonName: "mail.example.com"}, DNSNames: []string{"mail.example.com"},
			}, key)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromCSR(csr, UsageDANEEE, MatchSHA256)
			if err != nil {
				t.Fatal(err)
			}
			want, err := FromPublicKey(key, UsageDANEEE, MatchSHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("FromCSR = %v, want %v", got, want)
			}
			// A CSR whose signature does not verify is refused.
			bad := *csr
			bad.Signature = append([]byte(nil), csr.Signature...)
			bad.Signature[len(bad.Signature)/2] ^= 0xff
			if r, err := FromCSR(&bad, UsageDANEEE, MatchSHA256); err == nil {
				t.Errorf("FromCSR(tampered) = %v, want an error", r)
			}
		})
	}
}

func TestMarshalSPKIMatchesCertificate(t *testing.T) {
	for _, kind := range keyKinds {
		key := newKey(t, kind)
		cert := newCert(t, key, certOpts{cn: "x"}, nil, nil)
		got, err := MarshalSPKI(key)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !bytes.Equal(got, cert.RawSubjectPublicKeyInfo) {
			t.Errorf("%s: MarshalSPKI differs from the certificate's SPKI", kind)
		}
	}
}
