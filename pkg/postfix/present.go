package postfix

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Algorithm is a certificate's public key algorithm as Postfix serves it:
// smtpd_tls_chain_files holds at most one key of each (postconf(5)), and
// the TLS handshake picks which one a client gets.
type Algorithm string

// The algorithms Present can ask for. Ed25519 keys are reported by
// AlgorithmOf but Present cannot single them out (see Present).
const (
	RSA     Algorithm = "rsa"
	ECDSA   Algorithm = "ecdsa"
	Ed25519 Algorithm = "ed25519"
)

// AlgorithmOf returns the algorithm of c's public key: RSA, ECDSA,
// Ed25519, or the lower-case name of another x509.PublicKeyAlgorithm
// ("dsa", "unknown").
func AlgorithmOf(c *x509.Certificate) Algorithm {
	switch c.PublicKeyAlgorithm {
	case x509.RSA:
		return RSA
	case x509.ECDSA:
		return ECDSA
	case x509.Ed25519:
		return Ed25519
	}
	return Algorithm(strings.ToLower(c.PublicKeyAlgorithm.String()))
}

// cipherSuites are the TLS 1.2 suites that can only be completed with a
// certificate of the algorithm (RFC 8422 §2 for ECDHE_ECDSA, RFC 5246
// appendix A.5 and RFC 8422 for ECDHE_RSA): the server's certificate
// choice follows the suite.
var cipherSuites = map[Algorithm][]uint16{
	RSA: {
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	},
	ECDSA: {
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	},
}

// ErrAlgorithmUnavailable is matched (errors.Is) by *AlgorithmUnavailableError.
var ErrAlgorithmUnavailable = errors.New("the server has no certificate of this algorithm")

// AlgorithmUnavailableError is the error of Present when the server
// refused a handshake offering only alg's cipher suites with a
// handshake_failure alert (RFC 5246 §7.2.2; OpenSSL's "no shared
// cipher"): it serves no certificate of that algorithm, or its
// smtpd_tls_ciphers / smtpd_tls_protocols exclude those suites.
type AlgorithmUnavailableError struct {
	Addr      string    // "host:port" dialed
	Algorithm Algorithm // the algorithm asked for
	Err       error     // the handshake error
}

// Error returns `starttls 127.0.0.1:25: no ecdsa certificate: the server
// refused every ECDHE_ECDSA cipher suite (remote error: tls: handshake
// failure)`.
func (e *AlgorithmUnavailableError) Error() string {
	return fmt.Sprintf("starttls %s: no %s certificate: the server refused every ECDHE_%s cipher suite of TLS 1.2 (%v)",
		e.Addr, e.Algorithm, strings.ToUpper(string(e.Algorithm)), e.Err)
}

// Unwrap returns the handshake error.
func (e *AlgorithmUnavailableError) Unwrap() error { return e.Err }

// Is reports whether target is ErrAlgorithmUnavailable.
func (e *AlgorithmUnavailableError) Is(target error) bool { return target == ErrAlgorithmUnavailable }

// Hint tells the operator what to check.
func (e *AlgorithmUnavailableError) Hint() string {
	return fmt.Sprintf("the chain files Postfix reads hold no %s key and certificate (postconf -x smtpd_tls_chain_files), or smtpd_tls_protocols forbids TLS 1.2 or smtpd_tls_ciphers excludes the ECDHE_%s suites",
		e.Algorithm, strings.ToUpper(string(e.Algorithm)))
}

// Present makes a STARTTLS handshake to addr ("host:port") with SNI host
// that only alg's certificate can answer: TLS 1.2 at most (TLS 1.3 picks
// the certificate from signature_algorithms, which crypto/tls does not let
// a client restrict) and only the ECDHE_RSA or ECDHE_ECDSA cipher suites.
// It returns the presented chain, leaf first, whose leaf is of alg.
//
// A server without a certificate of alg answers with a handshake_failure
// alert: that is an *AlgorithmUnavailableError (errors.Is
// ErrAlgorithmUnavailable). A server that only speaks TLS 1.3 fails with a
// protocol_version alert, reported as a plain error. Ed25519 (and other
// algorithms) cannot be asked for this way: the ECDHE_ECDSA suites admit
// both ECDSA and Ed25519 certificates and the server picks; it returns an
// error. Connection and SMTP errors are those of Handshake (ErrNoSTARTTLS).
// The exchange is bounded by ctx and DefaultHandshakeTimeout.
func Present(ctx context.Context, addr, host string, alg Algorithm) ([]*x509.Certificate, error) {
	suites, ok := cipherSuites[alg]
	if !ok {
		return nil, fmt.Errorf("starttls %s: cannot ask for a %q certificate: only %q and %q can be singled out by cipher suite", addr, alg, RSA, ECDSA)
	}
	chain, _, err := starttls(ctx, addr, &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // the chain is judged by the caller (DANE), not PKIX
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       suites,
	})
	if err != nil {
		if isHandshakeFailureAlert(err) {
			return nil, &AlgorithmUnavailableError{Addr: addr, Algorithm: alg, Err: err}
		}
		return nil, err
	}
	if got := AlgorithmOf(chain[0]); got != alg {
		return nil, fmt.Errorf("starttls %s: asked for a %s certificate, the server presented a %s leaf %q", addr, alg, got, chain[0].Subject)
	}
	return chain, nil
}

// isHandshakeFailureAlert reports whether err is the server's
// handshake_failure alert (40, RFC 5246 §7.2.2). crypto/tls returns a
// received alert as a *net.OpError "remote error" around an unexported
// value whose text is that of tls.AlertError.
func isHandshakeFailureAlert(err error) bool {
	const handshakeFailure = 40
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		return oe.Err.Error() == tls.AlertError(handshakeFailure).Error()
	}
	var ae tls.AlertError
	return errors.As(err, &ae) && ae == handshakeFailure
}

// Backoff of WaitPresented: the first retry after waitFirst, doubling up to
// waitMax between attempts.
const (
	waitFirst = 50 * time.Millisecond
	waitMax   = time.Second
)

// StaleChainError is the error of WaitPresented when the server never
// presented the wanted leaf within the timeout: typically an smtpd started
// before the chain file changed still answers (no `postfix reload` yet, or
// busy smtpd processes that exit only after their session), or Postfix
// reads another file than the one that changed.
type StaleChainError struct {
	Addr      string            // "host:port" dialed
	Host      string            // SNI
	Algorithm Algorithm         // the algorithm of Want, forced in every handshake
	Want      *x509.Certificate // the leaf waited for
	Got       *x509.Certificate // the leaf of the last successful handshake; nil when none succeeded
	Last      error             // the error of the last attempt when it failed, else nil
	Attempts  int               // handshakes made
	Waited    time.Duration     // from the first attempt to giving up
}

// Error returns `starttls 127.0.0.1:25 (ecdsa): after 9 attempts in 5s the
// server still presents leaf "CN=mx" SPKI sha256 ab12…, want "CN=mx" SPKI
// sha256 cd34…`.
func (e *StaleChainError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "starttls %s (%s): after %d attempts in %s ", e.Addr, e.Algorithm, e.Attempts, e.Waited.Round(time.Millisecond))
	if e.Got != nil {
		fmt.Fprintf(&b, "the server still presents leaf %s", leafName(e.Got))
	} else {
		b.WriteString("no handshake succeeded")
	}
	fmt.Fprintf(&b, ", want leaf %s", leafName(e.Want))
	if e.Last != nil {
		fmt.Fprintf(&b, "; last attempt: %v", e.Last)
	}
	return b.String()
}

// Unwrap returns the last attempt's error, if any.
func (e *StaleChainError) Unwrap() error { return e.Last }

// Hint tells the operator how to make smtpd present the new chain.
func (e *StaleChainError) Hint() string {
	return "smtpd still presents another chain: check that Postfix reads the installed chain file (postconf -x smtpd_tls_chain_files, and -o overrides in master.cf: postconf -P), then run postfix reload"
}

// leafName is `"CN=mx" SPKI sha256 <hex>` for messages.
func leafName(c *x509.Certificate) string {
	if c == nil {
		return "(none)"
	}
	return fmt.Sprintf("%q SPKI sha256 %s", c.Subject.String(), spkiHex(c))
}

// spkiHex is the lower-case hex SHA-256 of c's SubjectPublicKeyInfo, the
// data of its 3 1 1 record (RFC 6698 §2.1).
func spkiHex(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// WaitPresented calls Present with want's algorithm until the presented
// leaf equals want (DER equality) and returns that chain, leaf first. It
// exists because `postfix reload` returns before every smtpd restarted
// (smtpd processes exit only when they notice the master's reload, a busy
// one after its session): for a while connections still get the previous
// chain.
//
// Attempts are spaced 50 ms, 100 ms, … doubling up to 1 s; the whole wait,
// handshakes included, ends within timeout (or ctx's deadline, if earlier).
// Every kind of failure is retried (an old smtpd may lack want's algorithm
// altogether). When the deadline passes it returns a *StaleChainError with
// the last presented leaf and the last error; ctx's cancellation returns
// ctx's error.
func WaitPresented(ctx context.Context, addr, host string, want *x509.Certificate, timeout time.Duration) ([]*x509.Certificate, error) {
	alg := AlgorithmOf(want)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	e := &StaleChainError{Addr: addr, Host: host, Algorithm: alg, Want: want}
	pause := waitFirst
	for {
		e.Attempts++
		chain, err := Present(wctx, addr, host, alg)
		if err == nil && chain[0].Equal(want) {
			return chain, nil
		}
		if err == nil {
			e.Got, e.Last = chain[0], nil
		} else {
			e.Last = err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		deadline, _ := wctx.Deadline()
		if time.Until(deadline) < pause {
			e.Waited = time.Since(start)
			return nil, e
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, waitMax)
	}
}
