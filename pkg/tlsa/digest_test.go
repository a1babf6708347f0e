package tlsa

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/miekg/dns"
)

func TestKeyDigest(t *testing.T) {
	for _, kind := range keyKinds {
		t.Run(kind, func(t *testing.T) {
			k := newKey(t, kind)
			cert := newCert(t, k, certOpts{cn: "mail.example.com"}, nil, nil)
			want := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
			got, err := SPKIDigest(cert)
			if err != nil || got != want {
				t.Errorf("SPKIDigest = %x, %v; want %x", got, err, want)
			}
			if h := SPKIDigestHex(cert); h != hex.EncodeToString(want[:]) {
				t.Errorf("SPKIDigestHex = %q, want %x", h, want)
			}
			for name, key := range map[string]any{"private": k, "public": k.Public()} {
				got, err := KeyDigest(key)
				if err != nil || got != want {
					t.Errorf("KeyDigest(%s) = %x, %v; want %x", name, got, err, want)
				}
				h, err := KeyDigestHex(key)
				if err != nil || h != hex.EncodeToString(want[:]) {
					t.Errorf("KeyDigestHex(%s) = %q, %v; want %x", name, h, err, want)
				}
				if !KeyMatches(cert, key) {
					t.Errorf("KeyMatches(cert, %s key) = false, want true", name)
				}
			}
			if other := newKey(t, kind); KeyMatches(cert, other) {
				t.Error("KeyMatches(cert, another key) = true, want false")
			}
			// The digest is the data of the 3 1 1 record.
			r, err := FromCertificate(cert, UsageDANEEE, SelectorSPKI, MatchSHA256)
			if err != nil || string(r.Data) != string(want[:]) {
				t.Errorf("3 1 1 data %x, %v; want the key digest %x", r.Data, err, want)
			}
		})
	}
}

func TestKeyDigestErrors(t *testing.T) {
	for name, cert := range map[string]*x509.Certificate{"nil": nil, "not parsed": {}} {
		if _, err := SPKIDigest(cert); !errors.Is(err, ErrEmptyDigest) {
			t.Errorf("SPKIDigest(%s) error = %v, want ErrEmptyDigest", name, err)
		}
		if h := SPKIDigestHex(cert); h != "" {
			t.Errorf("SPKIDigestHex(%s) = %q, want \"\"", name, h)
		}
	}
	if _, err := KeyDigest(nil); err == nil {
		t.Error("KeyDigest(nil) succeeded, want an error")
	}
	if _, err := KeyDigestHex("not a key"); err == nil {
		t.Error("KeyDigestHex(string) succeeded, want an error")
	}
	if KeyMatches(nil, newKey(t, "p256")) {
		t.Error("KeyMatches(nil, key) = true")
	}
}

// TestCertificateToDANEAgrees is the differential test against miekg/dns for
// every selector and matching type.
func TestCertificateToDANEAgrees(t *testing.T) {
	for _, kind := range keyKinds {
		k := newKey(t, kind)
		cert := newCert(t, k, certOpts{cn: "mail.example.com"}, nil, nil)
		for sel := uint8(0); sel <= SelectorSPKI; sel++ {
			for mt := uint8(0); mt <= MatchSHA512; mt++ {
				want, err := dns.CertificateToDANE(sel, mt, cert)
				if err != nil {
					t.Fatal(err)
				}
				r, err := FromCertificate(cert, UsageDANEEE, sel, mt)
				if err != nil {
					t.Fatal(err)
				}
				if got := hex.EncodeToString(r.Data); got != want {
					t.Errorf("%s 3 %d %d: FromCertificate %s…, dns.CertificateToDANE %s…", kind, sel, mt, clip(got), clip(want))
				}
			}
		}
	}
}

// TestCertificateToDANEGaps shows why SPKIDigest does not call
// dns.CertificateToDANE (decision 1 in digest.go): it fails once miekg/dns
// refuses a certificate without DER.
func TestCertificateToDANEGaps(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		got, err := dns.CertificateToDANE(SelectorSPKI, MatchSHA256, &x509.Certificate{})
		if err != nil || got != hex.EncodeToString(emptySHA256[:]) {
			t.Fatalf("dns.CertificateToDANE(unparsed certificate) = %q, %v; the gap is gone: consider calling it from SPKIDigest", got, err)
		}
	})
}
