package dnsupdate

// Why this file talks to the server with github.com/miekg/dns and not through
// github.com/libdns/rfc2136 (v1.0.1), method by method:
//
//   - reads: rfc2136.Provider.GetRecords transfers the whole zone (AXFR). That
//     needs allow-transfer for the key and moves every record of the zone;
//     DESIGN §6 wants reads by a direct TLSA query, so Records queries the
//     owner's TLSA RRset over TCP with RD off.
//   - replace: SetRecords sends "delete RRset" (RFC 2136 §2.5.2) before adding,
//     which would delete TLSA records owned by others at the same owner.
//   - add + remove: AppendRecords and DeleteRecords each send their own
//     UPDATE, so a replacement (add new, remove old) cannot be one atomic
//     message, and neither can carry a prerequisite section (RFC 2136 §2.4).
//   - errors: its exchange turns a failed answer into a formatted string
//     ("dns response error code …") and drops the response, so the TSIG
//     Error field (BADKEY/BADSIG/BADTIME), the server's time and the RCODE
//     are lost and errors cannot be classified; it has no timeout besides the
//     context and signs with time.Now() only.
//   - zones: it has no zone discovery; the caller must know the zone.
//
// Its per-record delete (class NONE, RFC 2136 §2.5.4) is what Apply does too.
// The tests use libdns/rfc2136 as "another writer" publishing at the same
// owner, to show that our changes leave its records alone.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// DefaultTimeout bounds one exchange (connect, send, answer) with the server.
const DefaultTimeout = 10 * time.Second

// tsigFudge is the allowed clock skew for TSIG in seconds (RFC 8945 §10
// recommends 300).
const tsigFudge = 300

// RFC2136 reads and changes TLSA records on a primary server with DNS
// queries and RFC 2136 dynamic updates signed with TSIG (RFC 8945). All
// messages go over TCP to Server. The zero value of the optional fields is
// usable; an RFC2136 must not be copied after first use. It is safe for
// concurrent use.
type RFC2136 struct {
	// Server is the primary's "host:port" (port 53 when omitted). Use an IP
	// address: a host name is resolved with the system resolver.
	Server string
	// Zone, when set, is the zone every owner belongs to ("example.com.");
	// it skips zone discovery.
	Zone string
	// Key signs every query and update; nil sends them unsigned.
	Key *TSIGKey
	// Timeout bounds each exchange; 0 means DefaultTimeout.
	Timeout time.Duration
	// Prerequisites adds, for every removed record, the prerequisite
	// "RR exists (value dependent)" (RFC 2136 §2.4.2) to the UPDATE, so a
	// concurrent writer's removal makes the whole UPDATE fail with
	// ErrPrerequisite instead of silently succeeding on a stale plan.
	Prerequisites bool

	mu    sync.Mutex
	zones map[string]string // lower-case owner -> zone

	updates, queries atomic.Int64

	// now is the clock used to sign; tests skew it. nil means time.Now.
	now func() time.Time
}

// Stats counts the messages an RFC2136 sent: UPDATE messages and queries
// (zone discovery and TLSA reads).
type Stats struct {
	Updates int64
	Queries int64
}

// Sent returns how many messages p has sent so far.
func (p *RFC2136) Sent() Stats {
	return Stats{Updates: p.updates.Load(), Queries: p.queries.Load()}
}

func (p *RFC2136) server() string {
	s := strings.TrimSpace(p.Server)
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(strings.Trim(s, "[]"), "53")
	}
	return s
}

func (p *RFC2136) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

func (p *RFC2136) keyAlgorithm() string {
	if p.Key == nil {
		return ""
	}
	return strings.TrimSuffix(p.Key.dnsAlgorithm(), ".")
}

func (p *RFC2136) keyName() string {
	if p.Key == nil {
		return ""
	}
	return dns.CanonicalName(p.Key.Name)
}

// FindZone returns the zone that holds owner on Server: the owner of the SOA
// record in the answer or authority section of an SOA query for owner,
// walking up one label at a time when the answer does not say (RFC 2136 §4
// "zone of enclosure"). A CNAME at a name on the way is not followed and
// SOA records of other zones (such as the CNAME target's) are ignored: only
// an SOA whose owner encloses the queried name counts. An explicit Zone skips
// the queries (an owner outside it is an ErrNotAuth error). Results are
// cached per owner. Errors are *UpdateError.
func (p *RFC2136) FindZone(ctx context.Context, owner string) (string, error) {
	owner = dns.CanonicalName(owner)
	if p.Zone != "" {
		zone := dns.CanonicalName(p.Zone)
		if !dns.IsSubDomain(zone, owner) {
			return "", &UpdateError{Class: ErrNotAuth, Op: "find zone of", Server: p.server(), Zone: zone, Owner: owner,
				Rcode: -1, KeyName: p.keyName(), Err: fmt.Errorf("the owner is not in the configured zone %q", zone)}
		}
		return zone, nil
	}
	p.mu.Lock()
	zone, ok := p.zones[owner]
	p.mu.Unlock()
	if ok {
		return zone, nil
	}
	for name := owner; ; {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeSOA)
		q.RecursionDesired = false
		r, err := p.exchange(ctx, q, "find zone of", "", owner, "SOA", &p.queries)
		if err != nil {
			return "", err
		}
		if r.Rcode == dns.RcodeRefused || ((r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError) && !r.Authoritative) {
			return "", &UpdateError{Class: ErrNotAuth, Op: "find zone of", Server: p.server(), Owner: owner,
				Rcode: r.Rcode, KeyName: p.keyName(), Err: errors.New("the server serves no zone that contains the owner")}
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return "", p.rcodeError(r, "find zone of", "", owner, "SOA")
		}
		if z := enclosingSOA(r, name); z != "" {
			p.mu.Lock()
			if p.zones == nil {
				p.zones = map[string]string{}
			}
			p.zones[owner] = z
			p.mu.Unlock()
			return z, nil
		}
		if name == "." {
			return "", &UpdateError{Class: ErrNotAuth, Op: "find zone of", Server: p.server(), Owner: owner,
				Rcode: r.Rcode, KeyName: p.keyName(), Err: errors.New("no SOA record found on the way to the root")}
		}
		i, _ := dns.NextLabel(name, 0)
		name = name[i:]
		if name == "" {
			name = "."
		}
	}
}

// enclosingSOA returns the owner of an SOA in r that encloses name (answer
// first, then authority), or "" when there is none or when name itself is a
// CNAME (whose answer's authority section may describe the target's zone).
func enclosingSOA(r *dns.Msg, name string) string {
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeCNAME && strings.EqualFold(rr.Header().Name, name) {
			return ""
		}
	}
	for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
		for _, rr := range sec {
			if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
				return dns.CanonicalName(soa.Hdr.Name)
			}
		}
	}
	return ""
}

// Records returns the TLSA records served at owner, read by a direct TLSA
// query to Server over TCP with recursion desired off (never a zone
// transfer). NXDOMAIN and NODATA give an empty slice. A CNAME at owner is an
// ErrNotAuth error, because records added there would be ignored (RFC 2136
// §3.4.1.2). Errors are *UpdateError.
func (p *RFC2136) Records(ctx context.Context, owner string) ([]RR, error) {
	owner = dns.Fqdn(owner)
	q := new(dns.Msg)
	q.SetQuestion(owner, dns.TypeTLSA)
	q.RecursionDesired = false
	zone := ""
	if p.Zone != "" {
		zone = dns.CanonicalName(p.Zone)
	} else {
		p.mu.Lock()
		zone = p.zones[dns.CanonicalName(owner)]
		p.mu.Unlock()
	}
	r, err := p.exchange(ctx, q, "query TLSA at", zone, owner, "TLSA", &p.queries)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Rcode == dns.RcodeNameError && r.Authoritative:
		return []RR{}, nil
	case r.Rcode == dns.RcodeRefused || (r.Rcode == dns.RcodeSuccess && !r.Authoritative) || (r.Rcode == dns.RcodeNameError && !r.Authoritative):
		return nil, &UpdateError{Class: ErrNotAuth, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
			Rcode: r.Rcode, KeyName: p.keyName(), Err: errors.New("the server is not authoritative for the owner (no AA bit or REFUSED)")}
	case r.Rcode != dns.RcodeSuccess:
		return nil, p.rcodeError(r, "query TLSA at", zone, owner, "TLSA")
	}
	out := []RR{}
	for _, rr := range r.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		switch v := rr.(type) {
		case *dns.CNAME:
			return nil, &UpdateError{Class: ErrNotAuth, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
				Rcode: r.Rcode, KeyName: p.keyName(),
				Err: fmt.Errorf("the owner is an alias (CNAME to %q): publish the TLSA records at the target or remove the CNAME", v.Target)}
		case *dns.TLSA:
			data, err := hex.DecodeString(v.Certificate)
			if err != nil {
				return nil, &UpdateError{Class: ErrServer, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
					Rcode: r.Rcode, KeyName: p.keyName(), Err: fmt.Errorf("bad TLSA data: %w", err)}
			}
			out = append(out, RR{Owner: owner, TTL: v.Hdr.Ttl, Record: tlsa.Record{
				Usage: v.Usage, Selector: v.Selector, MatchingType: v.MatchingType, Data: data}})
		}
	}
	return out, nil
}

// Apply sends the Add and Remove changes (Keep is ignored) as one RFC 2136
// UPDATE message per zone, TSIG-signed, so the changes of a zone apply
// atomically: all or none. Zones are updated one after the other in name
// order; when one fails, the zones before it stay changed and the error names
// the failing zone. A removal deletes only that exact record (class NONE,
// RFC 2136 §2.5.4), never the RRset, so records owned by others survive; an
// addition adds one record (§2.5.1; adding a record already served is a
// no-op). With Prerequisites, each removed record must still exist (§2.4.2).
// Nothing is sent when there is nothing to add or remove. Zones are found
// first (FindZone, up to 8 owners at a time). Errors are
// *UpdateError wrapping ErrTSIG, ErrRefused, ErrNotAuth, ErrServer or
// ErrPrerequisite.
func (p *RFC2136) Apply(ctx context.Context, changes []Change) error {
	type batch struct {
		zone          string
		adds, removes []Change
		owners        map[string]bool
		firstOwner    string
	}
	zoneOf, err := p.findZones(ctx, changes)
	if err != nil {
		return err
	}
	batches := map[string]*batch{}
	for _, c := range changes {
		if c.Op != Add && c.Op != Remove {
			continue
		}
		zone := zoneOf[dns.CanonicalName(c.Owner)]
		b := batches[zone]
		if b == nil {
			b = &batch{zone: zone, owners: map[string]bool{}, firstOwner: dns.Fqdn(c.Owner)}
			batches[zone] = b
		}
		b.owners[dns.CanonicalName(c.Owner)] = true
		if c.Op == Add {
			b.adds = append(b.adds, c)
		} else {
			b.removes = append(b.removes, c)
		}
	}
	zones := make([]string, 0, len(batches))
	for z := range batches {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		b := batches[z]
		m := new(dns.Msg)
		m.SetUpdate(z)
		m.Compress = true
		if p.Prerequisites {
			for _, c := range b.removes {
				m.Used([]dns.RR{tlsaRR(c.RR)})
			}
		}
		for _, c := range b.removes {
			m.Remove([]dns.RR{tlsaRR(c.RR)})
		}
		for _, c := range b.adds {
			m.Insert([]dns.RR{tlsaRR(c.RR)})
		}
		owner := ""
		if len(b.owners) == 1 {
			owner = b.firstOwner
		}
		if n := m.Len() + 200; n > dns.MaxMsgSize {
			return &UpdateError{Class: ErrServer, Op: "update", Server: p.server(), Zone: z, Owner: owner, Type: "TLSA", Rcode: -1,
				KeyName: p.keyName(), Err: fmt.Errorf("%d changes make a %d-byte UPDATE, more than one DNS message can carry (%d bytes); apply them in smaller plans", len(b.adds)+len(b.removes), n, dns.MaxMsgSize)}
		}
		r, err := p.exchange(ctx, m, "update", z, owner, "TLSA", &p.updates)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess {
			return p.rcodeError(r, "update", z, owner, "TLSA")
		}
	}
	return nil
}

// discoveryWorkers bounds the concurrent SOA queries of zone discovery.
const discoveryWorkers = 8

// findZones returns the zone of every owner that changes, keyed by lower-case
// owner, running up to discoveryWorkers FindZone calls at a time. On failure
// it returns the error of the first failing owner in plan order.
func (p *RFC2136) findZones(ctx context.Context, changes []Change) (map[string]string, error) {
	var owners []string
	seen := map[string]bool{}
	for _, c := range changes {
		o := dns.CanonicalName(c.Owner)
		if (c.Op == Add || c.Op == Remove) && !seen[o] {
			seen[o] = true
			owners = append(owners, o)
		}
	}
	zones := make([]string, len(owners))
	errs := make([]error, len(owners))
	sem := make(chan struct{}, discoveryWorkers)
	var wg sync.WaitGroup
	for i, o := range owners {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			zones[i], errs[i] = p.FindZone(ctx, o)
		}()
	}
	wg.Wait()
	out := make(map[string]string, len(owners))
	for i, o := range owners {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[o] = zones[i]
	}
	return out, nil
}

// tlsaRR builds a fresh TLSA RR for rr (miekg/dns's update helpers rewrite
// the header in place, so each section needs its own copy).
func tlsaRR(rr RR) *dns.TLSA {
	return &dns.TLSA{
		Hdr:          dns.RR_Header{Name: dns.Fqdn(rr.Owner), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: rr.TTL},
		Usage:        rr.Record.Usage,
		Selector:     rr.Record.Selector,
		MatchingType: rr.Record.MatchingType,
		Certificate:  hex.EncodeToString(rr.Record.Data),
	}
}

// exchange signs m with the key (if any), sends it over TCP and returns the
// answer. A TSIG error in the answer, a TSIG verification failure, an
// unsigned success answer to a signed request and transport failures are
// returned as *UpdateError; RCODEs are left to the caller.
func (p *RFC2136) exchange(ctx context.Context, m *dns.Msg, op, zone, owner, typ string, counter *atomic.Int64) (*dns.Msg, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &dns.Client{Net: "tcp", Timeout: timeout}
	if p.Key != nil {
		c.TsigSecret = map[string]string{p.keyName(): p.Key.Secret}
		m.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, p.clock().Unix())
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	server := p.server()
	base := UpdateError{Op: op, Server: server, Zone: zone, Owner: owner, Type: typ, KeyName: p.keyName(), KeyAlgorithm: p.keyAlgorithm(), Rcode: -1}

	counter.Add(1)
	r, _, err := c.ExchangeContext(ctx, m, server)
	if r != nil {
		base.Rcode = r.Rcode
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			// RFC 8945 §5.2: the server rejected our TSIG; it answers NOTAUTH
			// with the TSIG error (BADSIG and BADKEY unsigned, §5.3.2).
			e := base
			e.Class, e.TSIGError = ErrTSIG, t.Error
			if t.Error == dns.RcodeBadTime {
				e.LocalTime, e.Fudge = p.clock(), t.Fudge
				e.ServerTime = serverTime(t)
			}
			return nil, &e
		}
	}
	if err != nil {
		e := base
		e.Err = err
		switch {
		case r != nil && r.Rcode == dns.RcodeNotAuth && errors.Is(err, dns.ErrAuth):
			// miekg/dns does not verify the TSIG of any NOTAUTH answer
			// (ErrAuth). A plain NOTAUTH (not authoritative for the zone,
			// RFC 2136 §3.1.1) is a failure either way: let the caller
			// report its RCODE.
			return r, nil
		case r != nil && (errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrTime) || errors.Is(err, dns.ErrSecret) || errors.Is(err, dns.ErrKeyAlg)):
			e.Class = ErrTSIG
			e.Err = fmt.Errorf("the answer's TSIG did not verify: %w", err)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			e.Class, e.Rcode = ErrServer, -1
			e.Err = fmt.Errorf("no answer within %v: %w", timeout, err)
		default:
			e.Class, e.Rcode = ErrServer, -1
			e.Err = fmt.Errorf("exchange failed: %w", err)
		}
		return nil, &e
	}
	if p.Key != nil && r.Rcode == dns.RcodeSuccess && r.IsTsig() == nil {
		e := base
		e.Class, e.Err = ErrTSIG, errors.New("the server's NOERROR answer to a signed request is not signed")
		return nil, &e
	}
	return r, nil
}

// serverTime decodes the server's clock from a BADTIME answer's Other Data
// (RFC 8945 §5.2.3: 48-bit seconds since the epoch); without it, the answer's
// Time Signed.
func serverTime(t *dns.TSIG) time.Time {
	if t.OtherLen == 6 && len(t.OtherData) == 12 {
		if v, err := strconv.ParseUint(t.OtherData, 16, 64); err == nil {
			return time.Unix(int64(v), 0)
		}
	}
	return time.Unix(int64(t.TimeSigned), 0)
}

// rcodeError builds the *UpdateError for an answer with a failing RCODE.
func (p *RFC2136) rcodeError(r *dns.Msg, op, zone, owner, typ string) error {
	class := classify(r.Rcode, 0)
	if class == nil {
		class = ErrServer
	}
	if op != "update" && class == ErrPrerequisite {
		class = ErrServer
	}
	return &UpdateError{Class: class, Op: op, Server: p.server(), Zone: zone, Owner: owner, Type: typ, KeyName: p.keyName(), Rcode: r.Rcode}
}
