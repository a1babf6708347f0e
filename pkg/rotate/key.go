package rotate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeySpec says which key Stage makes.
type KeySpec struct {
	// Type is "ecdsa" or "rsa"; empty means the current key's type.
	Type string
	// Bits is the RSA modulus size in bits, 2048 to 8192 (default the
	// current key's size, or 2048).
	Bits int
	// Curve is "P-256" or "P-384" for ECDSA (default the current key's, or
	// P-256).
	Curve string
}

// Generate makes a key as spec says, defaulting to the shape of cur (the
// served chain's public key; nil when there is none). It returns the key
// and its algorithm name ("rsa-2048", "ecdsa-p256", …). An unknown type,
// curve or an RSA size outside 2048–8192 is an error naming it.
func (spec KeySpec) Generate(cur crypto.PublicKey) (crypto.Signer, string, error) {
	typ := spec.Type
	if typ == "" {
		typ = "ecdsa"
		if _, ok := cur.(*rsa.PublicKey); ok {
			typ = "rsa"
		}
	}
	switch typ {
	case "rsa":
		bits := spec.Bits
		if bits == 0 {
			bits = 2048
			if k, ok := cur.(*rsa.PublicKey); ok {
				bits = k.N.BitLen()
			}
		}
		if bits < 2048 || bits > 8192 {
			return nil, "", fmt.Errorf("RSA key size %d bits: use 2048 to 8192", bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		return k, fmt.Sprintf("rsa-%d", bits), err
	case "ecdsa":
		curve := spec.Curve
		if curve == "" {
			curve = "P-256"
			if k, ok := cur.(*ecdsa.PublicKey); ok {
				curve = k.Curve.Params().Name
			}
		}
		var c elliptic.Curve
		switch curve {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		default:
			return nil, "", fmt.Errorf("curve %q: use P-256 or P-384", curve)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		return k, "ecdsa-" + strings.ToLower(strings.ReplaceAll(curve, "-", "")), err
	}
	return nil, "", fmt.Errorf("key type %q: use ecdsa or rsa", typ)
}
