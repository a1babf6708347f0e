package tlsa

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// The key digest is the one value danehook compares keys by: the SHA-256 of
// the DER SubjectPublicKeyInfo (RFC 5280 §4.1), which is also the
// association data of a "3 1 1" or "2 1 1" record (RFC 6698 §2.1). Every
// package outside tlsa that needs it calls SPKIDigest or KeyDigest instead
// of hashing RawSubjectPublicKeyInfo itself.
//
// Decision (why not dns.CertificateToDANE from miekg/dns):
//  1. It hashes whatever cert.RawSubjectPublicKeyInfo holds, so a
//     certificate built by hand (not parsed) yields the SHA-256 of empty
//     input, e3b0c442…, without an error: exactly the record danehook must
//     never compute (ErrEmptyDigest). TestCertificateToDANEGaps/empty fails
//     once upstream refuses empty input.
//  2. It needs a certificate: a staged key, a CSR or a bare public key has
//     no *x509.Certificate, and KeyDigest serves them.
//  3. It returns hex only; callers compare [32]byte digests.
// Where both apply, TestCertificateToDANEAgrees checks that FromCertificate
// computes the same data as dns.CertificateToDANE for every selector and
// matching type.

// SPKIDigest returns the SHA-256 of cert's DER SubjectPublicKeyInfo: the data
// of its "3 1 1" record (RFC 6698 §2.1.2, §2.1.3). It returns an error
// wrapping ErrEmptyDigest for a nil certificate or one with no DER encoding
// (built by hand rather than parsed).
func SPKIDigest(cert *x509.Certificate) ([32]byte, error) {
	if cert == nil || len(cert.RawSubjectPublicKeyInfo) == 0 {
		return [32]byte{}, fmt.Errorf("tlsa: certificate SubjectPublicKeyInfo is empty (certificate not parsed from DER?): %w", ErrEmptyDigest)
	}
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo), nil
}

// SPKIDigestHex is SPKIDigest in lower-case hex (64 digits), as a 3 1 1
// record's data is printed; "" when SPKIDigest fails.
func SPKIDigestHex(cert *x509.Certificate) string {
	d, err := SPKIDigest(cert)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(d[:])
}

// KeyDigest returns the SHA-256 of the DER SubjectPublicKeyInfo of key, a
// public or private RSA, ECDSA or Ed25519 key as MarshalSPKI accepts: the
// data of the "3 1 1" record of any certificate for that key. It returns
// MarshalSPKI's errors for unusable keys.
func KeyDigest(key crypto.PublicKey) ([32]byte, error) {
	der, err := MarshalSPKI(key)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(der), nil
}

// KeyDigestHex is KeyDigest in lower-case hex (64 digits).
func KeyDigestHex(key crypto.PublicKey) (string, error) {
	d, err := KeyDigest(key)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(d[:]), nil
}

// KeyMatches reports whether cert carries key (public or private): their
// SubjectPublicKeyInfo digests are equal, or, for an encoding that differs
// only in form (an RSA key with explicit NULL parameters, say), the parsed
// public keys are equal.
func KeyMatches(cert *x509.Certificate, key crypto.PublicKey) bool {
	kd, err := KeyDigest(key)
	if err != nil || cert == nil {
		return false
	}
	if cd, err := SPKIDigest(cert); err == nil && cd == kd {
		return true
	}
	pub, err := publicHalf(key)
	if err != nil {
		return false
	}
	k, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}
