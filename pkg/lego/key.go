package lego

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"strconv"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/chain"
)

// InstallKey hands a staged key to lego: it writes key (PKCS #8 PEM, mode
// 0600) atomically into lego's key file keyFile (<name>.key, which lego
// --reuse-key reads at the next renewal), unless the file already holds that
// key. It returns whether the file changed. A pinned CSR must be made from
// the new key too (EnsureCSR): lego --csr reads the CSR, not the key file.
// Errors name the file.
func InstallKey(keyFile string, key crypto.Signer) (changed bool, err error) {
	if chain.HoldsKey(keyFile, key) {
		return false, nil
	}
	data, err := chain.EncodeKey(key)
	if err != nil {
		return false, fmt.Errorf("lego: install key in %q: %w", keyFile, err)
	}
	if err := atomicfile.Write(keyFile, data, 0o600); err != nil {
		return false, fmt.Errorf("lego: install key: %w", err)
	}
	return true, nil
}

// KeyType returns lego's --key-type name for key (EC256, EC384, RSA2048,
// RSA3072, RSA4096, RSA8192), or "" when lego has no such key type (an
// Ed25519 key, another curve or RSA size).
func KeyType(key crypto.PublicKey) string {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return "EC256"
		case 384:
			return "EC384"
		}
	case *rsa.PublicKey:
		switch n := k.N.BitLen(); n {
		case 2048, 3072, 4096, 8192:
			return "RSA" + strconv.Itoa(n)
		}
	}
	return ""
}
