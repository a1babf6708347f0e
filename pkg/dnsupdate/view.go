package dnsupdate

// Unsigned reads and views (decision V1). A signed TLSA read costs BIND
// about 110 µs of CPU against 20 µs unsigned (TSIG verification and
// signing of each answer), which made 75 % of a 5,000-owner publish; and
// the propagation check asks the primary the same question unsigned
// anyway. So the engine may read each owner once, unsigned, and share that
// answer between the plan and the propagation check (UnsignedZoneRecords).
// That is only right when the server gives unsigned queries the same data
// that signed UPDATEs change: a BIND with views selected by key
// (`match-clients { key danehook; };`) serves unsigned clients another
// view, which may hold another version of the zone or none. SameView tells,
// per zone, with one signed and one unsigned SOA query: the same SOA
// (serial and every other field) in both answers means the same version of
// the same zone; a dynamic zone's serial moves with every UPDATE (RFC 2136
// §3.6), so two views that diverged no longer agree. Anything else (another
// serial, another SOA, REFUSED, no answer) means "not the same view", and
// the caller reads that zone's owners signed, as before.

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

type unsignedKey struct{}

// withoutTSIG returns ctx marked so that the RFC2136 queries made with it
// are sent unsigned whatever the key.
func withoutTSIG(ctx context.Context) context.Context {
	return context.WithValue(ctx, unsignedKey{}, true)
}

func isUnsigned(ctx context.Context) bool {
	v, _ := ctx.Value(unsignedKey{}).(bool)
	return v
}

// ReadServer returns the "host:port" every query and UPDATE of p goes to
// (Server, port 53 when omitted).
func (p *RFC2136) ReadServer() string { return p.server() }

// UnsignedZoneRecords is ZoneRecords with every query (the TLSA read and
// any SOA query of zone discovery) sent without TSIG, so it sees what an
// unsigned client of Server sees: with views selected by key, possibly not
// the data the signed UPDATEs change (decision V1). The zone learned is
// cached like ZoneRecords'; call SameView for that zone before planning a
// change from the answer (SameView forgets the zone when the views differ).
// Errors are those of ZoneRecords, without TSIG errors.
func (p *RFC2136) UnsignedZoneRecords(ctx context.Context, owner string) (string, []RR, error) {
	return p.ZoneRecords(withoutTSIG(ctx), owner)
}

// SameView reports whether unsigned queries to Server see the version of
// zone that signed requests see (decision V1): it asks for the zone's SOA
// twice, unsigned and signed with the key, concurrently, and compares the
// two SOA records (every field, serial included). Without a key every read
// is unsigned anyway: true at no cost. When the answers differ, or either
// query fails, it returns false with what differed ("the unsigned answer
// has serial 7, the signed one 9"), and forgets the zone learned for the
// owners that unsigned reads placed in zone, so later signed reads find
// their zones again. It never returns an error: a failure of the signed
// query is reported again, typed, by the signed reads that follow.
func (p *RFC2136) SameView(ctx context.Context, zone string) (bool, string) {
	if p.Key == nil {
		return true, ""
	}
	zone = dns.CanonicalName(zone)
	var (
		wg         sync.WaitGroup
		u, s       *dns.SOA
		uerr, serr error
	)
	wg.Go(func() { u, uerr = p.askSOA(withoutTSIG(ctx), zone) })
	wg.Go(func() { s, serr = p.askSOA(ctx, zone) })
	wg.Wait()
	why := ""
	switch {
	case uerr != nil:
		why = "the unsigned SOA query failed: " + uerr.Error()
	case serr != nil:
		why = "the signed SOA query failed: " + serr.Error()
	case u.Serial != s.Serial:
		why = fmt.Sprintf("the unsigned answer has serial %d, the signed one %d", u.Serial, s.Serial)
	case !dns.IsDuplicate(u, s):
		why = fmt.Sprintf("the unsigned answer has SOA %q, the signed one %q", soaText(u), soaText(s))
	}
	if why == "" {
		return true, ""
	}
	p.mu.Lock()
	for o, z := range p.zones {
		if z == zone {
			delete(p.zones, o)
		}
	}
	p.mu.Unlock()
	return false, why
}

func soaText(s *dns.SOA) string {
	return strings.TrimPrefix(s.String(), s.Hdr.String())
}

// askSOA queries zone's SOA (signed unless ctx says withoutTSIG) and returns
// it from an authoritative NOERROR answer.
func (p *RFC2136) askSOA(ctx context.Context, zone string) (*dns.SOA, error) {
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	q.RecursionDesired = false
	r, err := p.exchange(ctx, q, "query SOA of", zone, zone, "SOA", &p.queries)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return nil, fmt.Errorf("server answered %s (authoritative: %t)", dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, zone) {
			return soa, nil
		}
	}
	return nil, fmt.Errorf("no SOA record for %q in the answer", zone)
}
