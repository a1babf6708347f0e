package tlsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// ErrEmptyDigest is returned when a record would be, or is, the SHA-256 or
// SHA-512 digest of empty input (or full data of zero bytes). Such a record
// never matches anything: it is always a bug in whatever produced the input.
var ErrEmptyDigest = errors.New("digest of empty input")

// ErrKeySelector is returned when a record with selector 0 (the whole
// certificate) is asked for from something that holds only a key: a bare
// public or private key, a CSR or an SPKI. Use selector 1.
var ErrKeySelector = errors.New("selector 0 needs a certificate; a key or CSR only gives selector 1 (SPKI)")

// Digests of empty input, refused by Parse and never produced by this package.
var (
	emptySHA256 = sha256.Sum256(nil)
	emptySHA512 = sha512.Sum512(nil)
)

// checkParams validates usage (0–3), selector (0–1) and matching type (0–2),
// the values RFC 6698 §7.2–7.4 and RFC 7218 assign.
func checkParams(usage, selector, mtype uint8) error {
	if usage > UsageDANEEE {
		return fmt.Errorf("usage %d out of range: want 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA) or 3 (DANE-EE)", usage)
	}
	if selector > SelectorSPKI {
		return fmt.Errorf("selector %d out of range: want 0 (Cert) or 1 (SPKI)", selector)
	}
	if mtype > MatchSHA512 {
		return fmt.Errorf("matching type %d out of range: want 0 (Full), 1 (SHA2-256) or 2 (SHA2-512)", mtype)
	}
	return nil
}

// associate returns the certificate association data for content, the DER
// certificate or SubjectPublicKeyInfo chosen by the selector (RFC 6698 §2.1.3).
// Empty content is refused with ErrEmptyDigest.
func associate(content []byte, mtype uint8) ([]byte, error) {
	if len(content) == 0 {
		return nil, ErrEmptyDigest
	}
	switch mtype {
	case MatchFull:
		return append([]byte(nil), content...), nil
	case MatchSHA256:
		d := sha256.Sum256(content)
		return d[:], nil
	case MatchSHA512:
		d := sha512.Sum512(content)
		return d[:], nil
	}
	return nil, fmt.Errorf("matching type %d out of range: want 0, 1 or 2", mtype)
}

// FromCertificate computes the record with the given usage (0–3), selector
// (0 the DER certificate, 1 its DER SubjectPublicKeyInfo) and matching type
// (0 full, 1 SHA-256, 2 SHA-512) for cert (RFC 6698 §2.1). It returns an error
// for out-of-range parameters and wraps ErrEmptyDigest for a certificate that
// has no DER encoding (an x509.Certificate built by hand rather than parsed).
func FromCertificate(cert *x509.Certificate, usage, selector, mtype uint8) (Record, error) {
	if cert == nil {
		return Record{}, errors.New("tlsa: nil certificate")
	}
	if err := checkParams(usage, selector, mtype); err != nil {
		return Record{}, fmt.Errorf("tlsa: %w", err)
	}
	content := cert.Raw
	what := "certificate DER"
	if selector == SelectorSPKI {
		content, what = cert.RawSubjectPublicKeyInfo, "certificate SubjectPublicKeyInfo"
	}
	if len(content) == 0 {
		return Record{}, fmt.Errorf("tlsa: %s is empty (certificate not parsed from DER?): %w", what, ErrEmptyDigest)
	}
	data, err := associate(content, mtype)
	if err != nil {
		return Record{}, fmt.Errorf("tlsa: %w", err)
	}
	return Record{Usage: usage, Selector: selector, MatchingType: mtype, Data: data}, nil
}

// FromPublicKey computes the selector 1 (SPKI) record with the given usage
// (0–3) and matching type (0–2) for pub (RFC 6698 §2.1.2). pub is an
// *rsa.PublicKey, *ecdsa.PublicKey (P-256, P-384 or P-521), ed25519.PublicKey,
// the value forms of the first two, or a private key of those kinds (its
// public half is used). It returns an error for any other key type, for an
// ECDSA key without a curve, and for out-of-range parameters; it never returns
// a digest of empty input.
func FromPublicKey(pub crypto.PublicKey, usage, mtype uint8) (Record, error) {
	spki, err := MarshalSPKI(pub)
	if err != nil {
		return Record{}, err
	}
	return FromSPKI(spki, usage, mtype)
}

// FromCSR computes the selector 1 (SPKI) record with the given usage (0–3) and
// matching type (0–2) for the key in csr. The CSR's self-signature must
// verify; a CSR that fails it is corrupt and an error is returned.
func FromCSR(csr *x509.CertificateRequest, usage, mtype uint8) (Record, error) {
	if csr == nil {
		return Record{}, errors.New("tlsa: nil certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return Record{}, fmt.Errorf("tlsa: certificate request signature: %w", err)
	}
	return FromSPKI(csr.RawSubjectPublicKeyInfo, usage, mtype)
}

// FromSPKI computes the selector 1 record with the given usage (0–3) and
// matching type (0–2) for spki, a DER SubjectPublicKeyInfo (RFC 5280 §4.1).
// spki must be one DER SEQUENCE; empty input wraps ErrEmptyDigest.
func FromSPKI(spki []byte, usage, mtype uint8) (Record, error) {
	if err := checkParams(usage, SelectorSPKI, mtype); err != nil {
		return Record{}, fmt.Errorf("tlsa: %w", err)
	}
	if len(spki) == 0 {
		return Record{}, fmt.Errorf("tlsa: SubjectPublicKeyInfo is empty: %w", ErrEmptyDigest)
	}
	if err := checkDERSequence(spki); err != nil {
		return Record{}, fmt.Errorf("tlsa: SubjectPublicKeyInfo: %w", err)
	}
	data, err := associate(spki, mtype)
	if err != nil {
		return Record{}, fmt.Errorf("tlsa: %w", err)
	}
	return Record{Usage: usage, Selector: SelectorSPKI, MatchingType: mtype, Data: data}, nil
}

// MarshalSPKI returns the DER SubjectPublicKeyInfo (RFC 5280 §4.1) of key,
// which is a public or private RSA, ECDSA or Ed25519 key as accepted by
// FromPublicKey. It never returns empty bytes without an error.
func MarshalSPKI(key crypto.PublicKey) ([]byte, error) {
	pub, err := publicHalf(key)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tlsa: encode %T public key: %w", pub, err)
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("tlsa: encode %T public key: %w", pub, ErrEmptyDigest)
	}
	return der, nil
}

// publicHalf normalises key to a pointer public key that
// x509.MarshalPKIXPublicKey accepts, rejecting unusable keys.
func publicHalf(key crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := key.(type) {
	case nil:
		return nil, errors.New("tlsa: nil key")
	case *rsa.PrivateKey:
		if k == nil {
			return nil, errors.New("tlsa: nil RSA key")
		}
		return publicHalf(&k.PublicKey)
	case rsa.PrivateKey:
		return publicHalf(&k.PublicKey)
	case rsa.PublicKey:
		return publicHalf(&k)
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.Sign() <= 0 || k.E <= 0 {
			return nil, errors.New("tlsa: RSA public key has no modulus or exponent")
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil, errors.New("tlsa: nil ECDSA key")
		}
		return publicHalf(&k.PublicKey)
	case ecdsa.PrivateKey:
		return publicHalf(&k.PublicKey)
	case ecdsa.PublicKey:
		return publicHalf(&k)
	case *ecdsa.PublicKey:
		// PublicKey.Bytes, the replacement of the deprecated X and Y, panics
		// on a key built by hand with nil coordinates; only this nil check
		// reads them.
		//lint:ignore SA1019 see above
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return nil, errors.New("tlsa: ECDSA public key has no curve or point")
		}
		return k, nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("tlsa: Ed25519 private key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
		}
		return k.Public(), nil
	case *ed25519.PrivateKey:
		if k == nil {
			return nil, errors.New("tlsa: nil Ed25519 key")
		}
		return publicHalf(*k)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("tlsa: Ed25519 public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return k, nil
	case *ed25519.PublicKey:
		if k == nil {
			return nil, errors.New("tlsa: nil Ed25519 key")
		}
		return publicHalf(*k)
	case crypto.Signer:
		return publicHalf(k.Public())
	}
	return nil, fmt.Errorf("tlsa: unsupported key type %T (want RSA, ECDSA or Ed25519)", key)
}

// checkDERSequence reports whether b is exactly one DER SEQUENCE, the outer
// shape of both a certificate and a SubjectPublicKeyInfo.
func checkDERSequence(b []byte) error {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return fmt.Errorf("not DER: %w", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes after the DER SEQUENCE", len(rest))
	}
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagSequence || !v.IsCompound {
		return errors.New("not a DER SEQUENCE")
	}
	return nil
}
