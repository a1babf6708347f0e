package acmelab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
)

// httpsCertLifetime is how long the lab's HTTPS CA and server certificate
// are valid. A lab lives for one test run; a year leaves room for a lab
// directory kept around by hand.
const httpsCertLifetime = 365 * 24 * time.Hour

// writeHTTPSCerts makes a self-signed ECDSA P-256 CA and a server certificate
// it signs for 127.0.0.1, ::1 and localhost, and writes the CA certificate
// (caFile), the server certificate (certFile) and its PKCS#8 key (keyFile,
// mode 0600) as PEM. It returns a pool holding the CA. The profile satisfies
// strict verifiers (Python 3.13's VERIFY_X509_STRICT): basic constraints and
// key usage critical on the CA, SKI/AKI, serverAuth on the leaf.
func writeHTTPSCerts(caFile, certFile, keyFile string) (*x509.CertPool, error) {
	now := time.Now().Add(-time.Hour) // tolerate small clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate HTTPS CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "danehook acmelab HTTPS CA", Organization: []string{"danehook test lab"}},
		NotBefore:             now,
		NotAfter:              now.Add(httpsCertLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create HTTPS CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse HTTPS CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate HTTPS server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now,
		NotAfter:     now.Add(httpsCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create HTTPS server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode HTTPS server key: %w", err)
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write HTTPS CA certificate: %w", err)
	}
	// The server certificate file holds the leaf only; clients trust the CA.
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("write HTTPS server certificate: %w", err)
	}
	if err := atomicfile.Write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write HTTPS server key: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

// serial returns a random positive 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}
