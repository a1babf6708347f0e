package propagate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// udpSize is the EDNS(0) UDP payload size advertised in every query: the
// 1232 bytes of the DNS Flag Day 2020 recommendation, which avoids IP
// fragmentation; larger answers come back truncated and are asked again
// over TCP.
const udpSize = 1232

// ErrNotAuthoritative is wrapped by the errors returned when the primary
// does not answer authoritatively (AA bit set, RCODE NOERROR) for the zone:
// a wrong zone name, or a wrong primary address.
var ErrNotAuthoritative = errors.New("not authoritative")

// ErrTruncated is wrapped by the error returned when a server's answer has
// the TC bit set even over TCP (a TCP message carries up to 65535 bytes, so
// asking again cannot complete it). Such an answer
// is never taken as the RRset: a truncated TLSA answer may lack records and
// would make a served record look absent, or an RRset look smaller.
var ErrTruncated = errors.New("answer truncated (TC bit) even over TCP")

// query is one question for exchange.
type query struct {
	name      string
	qtype     uint16
	recursive bool // RD bit; only for the resolver
	dnssec    bool // DO bit (RFC 3225), and AD bit when recursive (RFC 6840 §5.7)
}

func (q query) String() string {
	return q.name + " " + dns.TypeToString[q.qtype]
}

// exchange sends q to addr ("ip:port") over UDP and asks again over TCP when
// the answer is truncated (RFC 7766 §5; RFC 1035 §4.2.1). A TCP answer that
// is still truncated is an error wrapping ErrTruncated, never an answer.
// Each attempt is bounded by the checker's timeout and by ctx.
func (c *Checker) exchange(ctx context.Context, addr string, q query) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.RecursionDesired = q.recursive
	m.SetEdns0(udpSize, q.dnssec)
	if q.recursive && q.dnssec {
		m.AuthenticatedData = true
	}
	cl := &dns.Client{Net: "udp", Timeout: c.timeout(), UDPSize: udpSize}
	r, err := exchangeContext(ctx, cl, m, addr)
	if r != nil && r.Truncated {
		cl.Net = "tcp"
		r, err = exchangeContext(ctx, cl, m, addr)
		if r != nil && r.Truncated {
			return nil, fmt.Errorf("query %s at %s: %w", q, addr, ErrTruncated)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("query %s at %s: %w", q, addr, err)
	}
	return r, nil
}

// exchangeContext is cl.ExchangeContext, except that a cancelled ctx (a
// SIGTERM) also ends the wait for the answer, which miekg/dns v1.1.73 bounds
// only by the deadline.
func exchangeContext(ctx context.Context, cl *dns.Client, m *dns.Msg, addr string) (*dns.Msg, error) {
	var r *dns.Msg
	co, err := cl.DialContext(ctx, addr)
	if err == nil {
		defer co.Close()
		defer context.AfterFunc(ctx, func() { _ = co.SetDeadline(time.Now()) })()
		r, _, err = cl.ExchangeWithConnContext(ctx, m, co)
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), context.Canceled)
	}
	return r, err
}

// authoritative checks that r is an authoritative answer (AA bit) with
// RCODE NOERROR, or NXDOMAIN when nxOK.
func authoritative(r *dns.Msg, addr string, q query, nxOK bool) error {
	switch {
	case r.Rcode == dns.RcodeNameError && nxOK:
	case r.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("query %s at %s: server answered %s: %w", q, addr, dns.RcodeToString[r.Rcode], ErrNotAuthoritative)
	}
	if !r.Authoritative {
		return fmt.Errorf("query %s at %s: answer has no AA bit: %w", q, addr, ErrNotAuthoritative)
	}
	return nil
}

// soa is what a server says about the zone apex SOA.
type soa struct {
	serial      uint32
	negativeTTL uint32   // min(SOA TTL, MINIMUM), seconds (RFC 2308 §5)
	rr          *dns.SOA // the record itself
}

// askSOA asks addr for the SOA of zone, authoritatively.
func (c *Checker) askSOA(ctx context.Context, addr, zone string) (soa, error) {
	q := query{name: zone, qtype: dns.TypeSOA}
	r, err := c.exchange(ctx, addr, q)
	if err != nil {
		return soa{}, err
	}
	if err := authoritative(r, addr, q, false); err != nil {
		return soa{}, err
	}
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.SOA); ok && sameName(s.Hdr.Name, zone) {
			return soa{serial: s.Serial, negativeTTL: NegativeTTL(s), rr: s}, nil
		}
	}
	return soa{}, fmt.Errorf("query %s at %s: no SOA in the answer: %w", q, addr, ErrNotAuthoritative)
}

// NegativeTTL returns the negative-caching TTL of a zone in seconds: the
// smaller of the SOA record's own TTL and its MINIMUM field (RFC 2308 §5).
// Resolvers cache "no such record" answers for that long.
func NegativeTTL(s *dns.SOA) uint32 {
	return min(s.Hdr.Ttl, s.Minttl)
}

// canonical returns name absolute and in lower case.
func canonical(name string) string {
	return dns.CanonicalName(strings.TrimSpace(name))
}

// sameName compares two domain names case-insensitively (RFC 4343).
func sameName(a, b string) bool {
	return strings.EqualFold(dns.Fqdn(a), dns.Fqdn(b))
}

// serialBehind reports whether serial s is older than p in serial number
// arithmetic (RFC 1982 §3.2).
func serialBehind(s, p uint32) bool {
	return s != p && int32(p-s) > 0
}
