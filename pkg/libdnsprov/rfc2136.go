package libdnsprov

import (
	"errors"
	"strings"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/libdns/rfc2136"
)

// libdns/rfc2136 v1.0.1, driven through its AppendRecords and
// DeleteRecords only. Its gaps (the reasons danehook keeps its own type =
// "rfc2136" client, see pkg/dnsupdate/rfc2136.go) and how this path lives
// with them, each shown by a test in rfc2136_test.go:
//
//   - errors are strings: "dns response error code "NOTAUTH" (9)", and a
//     TSIG failure arrives as miekg/dns's "dns: bad authentication" (seen
//     against BIND 9.18 with a wrong secret): the TSIG error of the answer
//     (BADKEY, BADSIG, BADTIME), the server's time and the RCODE are
//     dropped. Classify maps what the text allows (auth, NOTAUTH → zone,
//     REFUSED → request), and dnsupdate.Libdns's Diagnose (set by the
//     CLI) asks again with danehook's own signed query, which reads the
//     TSIG error and names it with its hint (TestLibdnsRFC2136AgainstBIND
//     in cmd/internal/cliapp logs the raw error).
//   - it always signs (SetTsig with the configured name): a key is
//     required here.
//   - adds and removes are separate UPDATE messages, not one: the
//     removals are sent after the additions, so the invariant holds
//     between them, but an UPDATE carries no prerequisites
//     (prerequisites = true is refused). Each call is one message of any
//     size, so dnsupdate.Libdns splits a zone's changes into calls of at
//     most LibdnsRFC2136MessageBytes (LibdnsLimitOf).
//   - no timeout of its own: dnsupdate.Libdns bounds each call by context.
func init() {
	register(Spec{
		Name:     "rfc2136",
		Module:   "github.com/libdns/rfc2136 v1.0.1",
		Status:   "default build; tested end to end against the lab's BIND (TSIG, adds, removes, error classes)",
		Settings: nil,
		New: func(s Settings) (dnsupdate.LibdnsProvider, error) {
			if s.Key == nil {
				return nil, errors.New("libdns/rfc2136 signs every UPDATE: set key_file, or key_name with secret_file or secret_env")
			}
			if s.Server == "" {
				return nil, errors.New("missing server: the primary as host:port")
			}
			return &rfc2136.Provider{KeyName: s.Key.Name, KeyAlg: s.Key.Algorithm, Key: s.Key.Secret, Server: s.Server}, nil
		},
		Classify: classifyRFC2136,
	})
}

func classifyRFC2136(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "BADSIG"), strings.Contains(msg, "BADKEY"), strings.Contains(msg, "BADTIME"),
		strings.Contains(msg, "bad signature"), strings.Contains(msg, "bad time"), strings.Contains(msg, "bad authentication"):
		return dnsupdate.ErrProviderAuth
	case strings.Contains(msg, `"NOTAUTH"`), strings.Contains(msg, `"NOTZONE"`):
		return dnsupdate.ErrProviderZone
	case strings.Contains(msg, `"REFUSED"`):
		return dnsupdate.ErrProviderRequest
	case strings.Contains(msg, "dns response error code"):
		return dnsupdate.ErrProviderUnavailable // SERVFAIL and the rest
	}
	return nil
}
