package chain

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Errors returned by ParsePEM and ReadFile; test with errors.Is.
var (
	// ErrNoPEM: the data holds no PEM block that carries a certificate, key or
	// certificate request (an empty file, a DER file, a file of EC PARAMETERS only).
	ErrNoPEM = errors.New("no PEM certificate, key or certificate request found")
	// ErrMalformedPEM: a "-----BEGIN" line starts a block that does not decode
	// (truncated file, bad base64, missing END line).
	ErrMalformedPEM = errors.New("malformed PEM block")
	// ErrUnsupportedBlock: a PEM block of a type danehook does not read.
	ErrUnsupportedBlock = errors.New("unsupported PEM block type")
	// ErrEncryptedKey: a private key protected by a passphrase. Postfix cannot
	// read those from smtpd_tls_chain_files either.
	ErrEncryptedKey = errors.New("private key is encrypted; Postfix cannot read encrypted keys")
)

// Bundle is everything found in one PEM file, in file order.
type Bundle struct {
	// Certificates from "CERTIFICATE" blocks.
	Certificates []*x509.Certificate
	// PrivateKeys from "PRIVATE KEY" (PKCS #8, RFC 5208/5958: RSA, ECDSA,
	// Ed25519), "RSA PRIVATE KEY" (PKCS #1, RFC 8017) and "EC PRIVATE KEY"
	// (SEC 1, RFC 5915) blocks: *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey.
	PrivateKeys []crypto.Signer
	// PrivateKeyBlocks holds, for PrivateKeys[i], the PEM block it was read
	// from (type and DER bytes exactly as in the file, headers dropped), so a
	// key can be written back in its original encoding.
	PrivateKeyBlocks []*pem.Block
	// PublicKeys from "PUBLIC KEY" (SubjectPublicKeyInfo, RFC 5280 §4.1.2.7)
	// and "RSA PUBLIC KEY" (PKCS #1) blocks.
	PublicKeys []crypto.PublicKey
	// CSRs from "CERTIFICATE REQUEST" and "NEW CERTIFICATE REQUEST" blocks
	// (PKCS #10, RFC 2986).
	CSRs []*x509.CertificateRequest
}

func (b *Bundle) empty() bool {
	return len(b.Certificates) == 0 && len(b.PrivateKeys) == 0 && len(b.PublicKeys) == 0 && len(b.CSRs) == 0
}

var (
	beginMarker     = []byte("-----BEGIN ")
	lineBeginMarker = []byte("\n-----BEGIN ")
)

// beginIndex returns the offset of the first "-----BEGIN " that starts a
// line in data, or -1; encoding/pem only recognises markers at a line start.
func beginIndex(data []byte) int {
	if bytes.HasPrefix(data, beginMarker) {
		return 0
	}
	i := bytes.Index(data, lineBeginMarker)
	if i < 0 {
		return -1
	}
	return i + 1
}

// blockType returns the type named on the BEGIN line at the start of data,
// cut to 64 bytes so that a garbage line cannot flood an error message.
func blockType(data []byte) string {
	line, _, _ := bytes.Cut(data[len(beginMarker):], []byte("\n"))
	t, _, _ := bytes.Cut(line, []byte("-----"))
	if len(t) > 64 {
		t = append(t[:64:64], "..."...)
	}
	return strings.TrimSpace(string(t))
}

// ParsePEM decodes every PEM block (RFC 7468) in data into a Bundle.
//
// Text outside blocks is ignored (as OpenSSL does: "openssl x509 -text"
// output reads fine). "EC PARAMETERS" blocks, which "openssl ecparam -genkey"
// writes before the key, are skipped. Errors, each naming the block number,
// its type and its line:
//   - ErrNoPEM when nothing usable was found;
//   - ErrMalformedPEM for a block that does not decode (truncated file);
//   - ErrUnsupportedBlock for any other block type;
//   - ErrEncryptedKey for "ENCRYPTED PRIVATE KEY" and for PKCS #1/SEC 1 keys
//     with a "Proc-Type: 4,ENCRYPTED" header;
//   - the crypto/x509 error for a block whose DER does not parse, or has
//     bytes after the DER object (Postfix rejects those as "excess data").
func ParsePEM(data []byte) (*Bundle, error) {
	b := &Bundle{}
	off, n := 0, 0
	line, counted := 1, 0 // line number of data[counted]
	for {
		i := beginIndex(data[off:])
		if i < 0 {
			break
		}
		start := off + i
		n++
		line += bytes.Count(data[counted:start], []byte("\n"))
		counted = start
		typ := blockType(data[start:])
		block, rest := pem.Decode(data[start:])
		if block == nil {
			return nil, fmt.Errorf("PEM block %d %q at line %d: %w", n, typ, line, ErrMalformedPEM)
		}
		consumed := data[start : len(data)-len(rest)]
		if beginIndex(consumed[1:]) >= 0 {
			// pem.Decode skipped a block it could not decode and returned a later one.
			return nil, fmt.Errorf("PEM block %d %q at line %d: %w", n, typ, line, ErrMalformedPEM)
		}
		if err := b.add(block); err != nil {
			return nil, fmt.Errorf("PEM block %d %q at line %d: %w", n, block.Type, line, err)
		}
		off = len(data) - len(rest)
	}
	if b.empty() {
		return nil, ErrNoPEM
	}
	return b, nil
}

func (b *Bundle) add(block *pem.Block) error {
	switch block.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return err
		}
		b.Certificates = append(b.Certificates, c)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return ErrEncryptedKey
		}
		k, err := parsePrivateKey(block)
		if err != nil {
			return err
		}
		b.PrivateKeys = append(b.PrivateKeys, k)
		b.PrivateKeyBlocks = append(b.PrivateKeyBlocks, &pem.Block{Type: block.Type, Bytes: block.Bytes})
	case "ENCRYPTED PRIVATE KEY":
		return ErrEncryptedKey
	case "EC PARAMETERS":
		// Written by "openssl ecparam -genkey" ahead of the key; the key names its curve itself.
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return err
		}
		b.PublicKeys = append(b.PublicKeys, k)
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return err
		}
		b.PublicKeys = append(b.PublicKeys, k)
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
		r, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return err
		}
		b.CSRs = append(b.CSRs, r)
	default:
		return ErrUnsupportedBlock
	}
	return nil
}

// parsePrivateKey decodes a "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE
// KEY" block into an RSA, ECDSA or Ed25519 signer.
func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	var rv asn1.RawValue
	if rest, err := asn1.Unmarshal(block.Bytes, &rv); err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	} else if len(rest) > 0 {
		return nil, fmt.Errorf("private key: %d bytes of excess data after the DER object", len(rest))
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, ErrUnsupportedBlock
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("private key of type %T cannot sign; want RSA, ECDSA or Ed25519", k)
	}
}

// ReadFile reads the file at path and parses it with ParsePEM. Every error
// names the file; when path is a symbolic link (certbot's live/ directory)
// and reading fails, the error also names the link's target.
func ReadFile(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below, once
		}
		if target, lerr := os.Readlink(path); lerr == nil {
			return nil, fmt.Errorf("read %q (symlink to %q): %w", path, target, err)
		}
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	b, err := ParsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return b, nil
}

// ReadKey reads the one private key in the PEM file at path (a key file
// such as certbot's privkey.pem, lego's <name>.key or a staged key). A file
// with no private key or with several is an error naming the file.
func ReadKey(path string) (crypto.Signer, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b.PrivateKeys) != 1 {
		return nil, fmt.Errorf("key file %q: want one private key, found %d", path, len(b.PrivateKeys))
	}
	return b.PrivateKeys[0], nil
}

// EncodeKey returns key as a PKCS #8 "PRIVATE KEY" PEM block (RFC 5958),
// the form certbot, lego and Postfix all read.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode %T private key: %w", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// HoldsKey reports whether the key file at path holds exactly one private
// key and it is key (equal tlsa.KeyDigest). An unreadable file holds no key.
func HoldsKey(path string, key crypto.PublicKey) bool {
	cur, err := ReadKey(path)
	if err != nil {
		return false
	}
	have, err1 := tlsa.KeyDigest(cur)
	want, err2 := tlsa.KeyDigest(key)
	return err1 == nil && err2 == nil && have == want
}
