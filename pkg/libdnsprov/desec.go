package libdnsprov

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/libdns/desec"
)

// libdns/desec v1.1.1 (deSEC, desec.io; the API is RRset-based, see
// internal/desecfake/README.md). What it does and where it falls short, each
// shown by a test in desec_test.go against internal/desecfake:
//
//   - AppendRecords and DeleteRecords read the RRset (GET
//     …/rrsets/{subname}/TLSA/), merge or remove the record, and write it
//     back with one bulk PUT per call: atomic at deSEC, but a
//     read-modify-write, so two processes writing one owner at once can
//     lose a record (deSEC offers no precondition). One danehook run holds
//     its lock; two MX hosts sharing an owner should use rfc2136.
//   - The TTL is per RRset and at least the domain's minimum TTL: it sends
//     max(ttl, 3600) for a new RRset and keeps the RRset's TTL when it
//     appends (deSEC's default minimum is 3600 s; danehook observes the TTL
//     served, so ageing is right either way).
//   - Records are compared as strings; deSEC stores TLSA in canonical form
//     (lower-case hex), the form danehook sends, so deletes match.
//   - 429: it waits Retry-After and retries until the context ends (the
//     provider table's timeout per record), then fails "waiting for
//     cooldown to end": ErrProviderUnavailable.
//   - Errors are "unexpected status code N: <body>"; the body never holds
//     the token (deSEC answers {"detail": "Invalid token."}).
//   - Its HTTP client is http.DefaultClient and the base URL is fixed to
//     https://desec.io: tests redirect http.DefaultTransport to the fake.
func init() {
	register(Spec{
		Name:     "desec",
		Module:   "github.com/libdns/desec v1.1.1",
		Status:   "default build; tested against internal/desecfake (no live deSEC account here)",
		TokenEnv: "DESEC_TOKEN",
		New: func(s Settings) (dnsupdate.LibdnsProvider, error) {
			return &desec.Provider{Token: s.Token}, nil
		},
		Classify: classifyDesec,
	})
}

var desecStatus = regexp.MustCompile(`unexpected status code ([0-9]{3})`)

func classifyDesec(err error) error {
	msg := err.Error()
	if m := desecStatus.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return statusClass(n)
	}
	if strings.Contains(msg, "waiting for cooldown") || strings.Contains(msg, "Retry-After") {
		return dnsupdate.ErrProviderUnavailable
	}
	return nil
}
