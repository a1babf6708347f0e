package postfix

import (
	"crypto/x509"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Evaluate matches a chain, as a server would send it (leaf first), against
// rrset for the TLSA base domain host at time now, with the full semantics
// of a DANE SMTP sender (RFC 7671 §5, RFC 7672 §3): tlsa.Match, then for each
// DANE-TA(2) match, path validation from the anchor to the leaf and the
// leaf's name check against host. It is what Verify applies to a presented
// chain, offered for chains that are not served yet (a renewal about to be
// installed) so that "would senders accept this chain" has one answer.
func Evaluate(chain []*x509.Certificate, host string, rrset []tlsa.Record, now time.Time) *Verification {
	return evaluate(chain, host, rrset, now)
}
