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
//
// Decisions about concurrent writers (Prerequisites), each tied to a test in
// rfc2136_test.go (TestPrerequisitesTwoWriters):
//
//  P1. RFC 2136 has no per-record "this RR exists" prerequisite. §2.4.1
//      (RRset exists, value independent) only says "some TLSA is there";
//      §2.4.2 (value dependent) says "the RRset is exactly this set" (§3.2.5
//      compares the whole RRset). Sending one removed record as a §2.4.2
//      prerequisite, as this client once did, asserts "the RRset is only
//      this record": every removal at an owner that holds anything else (a
//      second MX host's record, a foreign 3 0 1, our own next key) failed
//      with NXRRSET, so two hosts on one owner could never clean up.
//  P2. What must be protected is the reason a removal is safe: the records
//      that stay. Two writers that each remove "their" record because the
//      other one is still there (two hosts serving one key, or one relying
//      on a shared 2 1 1) must not both succeed and leave nothing. The plan
//      says what it relies on with Keep entries at the owner (Diff keeps
//      every served record it does not remove; a caller that knows which
//      records the served chains match may list only those). A record that
//      is to be removed and is already gone is no conflict: the goal state
//      is reached. Additions need no prerequisite: adding never removes
//      what a chain matches.
//  P3. "Every kept record is still served" is made exact with §2.4.2 on a
//      fresh read: Apply reads the owner's RRset, checks the kept records
//      are in it, and sends that whole RRset as the prerequisite, so the
//      server applies the UPDATE only if nothing changed since that read
//      (§3.7: atomic with other UPDATEs). On NXRRSET it reads again and
//      resends, so a concurrent addition (the other host publishing its
//      next key) or removal of an unkept record costs one more round trip,
//      not a failure; a kept record gone is ErrPrerequisite.
//  P4. Not chosen: a prerequisite on the RRset as the plan read it (an
//      optimistic lock on the whole RRset) fails on every benign concurrent
//      addition; §2.4.1 alone protects nothing once another record remains.
//
// Transport (T1): every message goes over TCP (RFC 7766), so an answer with
// the TC bit set cannot be completed by asking again over TCP: it is an
// ErrServer error wrapping ErrTruncated, never a success or an RRset (an
// UPDATE answered truncated might not have been applied, or the record
// would be forgotten while still served).

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
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
	// Zones, when set (and Zone is not), are the zones of a server serving
	// several ("example.com.", "example.net."): an owner below one of them
	// is taken to be in the longest that encloses it, as Zone does for
	// every owner; an owner below none is placed by zone discovery.
	Zones []string
	// Key signs every query and update; nil sends them unsigned.
	Key *TSIGKey
	// Timeout bounds each exchange; 0 means DefaultTimeout.
	Timeout time.Duration
	// Prerequisites protects removals for several writers at one owner
	// (decisions P1–P4 at the top of this file): a removal is applied only
	// if every record the plan keeps at that owner (its Keep entries) is
	// still served when the server processes the UPDATE; otherwise the
	// UPDATE message carrying the removal fails with ErrPrerequisite and
	// nothing in it changes.
	// Records added or removed meanwhile by others that the plan does not
	// keep are no conflict (Apply reads again and resends). It costs one
	// TLSA query per owner with a removal and a Keep entry.
	Prerequisites bool

	// zoneSet is Zones prepared once for configuredZone.
	zoneSetOnce sync.Once
	zoneSet     ZoneSet

	mu    sync.Mutex
	zones map[string]string // lower-case owner -> zone
	// packs remembers how many units pack found fit in one message, for
	// runs of additions only (whose message does not depend on
	// prerequisites or the registry): Messages packs a plan and Apply then
	// packs the same additions again (at 5,000 additions each packing
	// builds about 24,000 units' worth of messages). Keyed by the batch's
	// digest (zoneBatch.digest), bounded by maxPackMemo batches.
	packs map[[sha256.Size]byte]map[packRange]int
	// transfers are the zones TransferZone read from Server in this run
	// (canonical zone name -> copy): FindZone places owners from them.
	transfers map[string]*Zone

	updates, queries atomic.Int64

	pmu  sync.Mutex
	pipe *pipe // the TCP connection queries in flight share (pipeline.go), nil when none
	// pipeAnswers counts the answers read on every pipelined connection:
	// a query lost with its connection while it grew met a server that
	// answers (pipeline.go).
	pipeAnswers atomic.Int64

	// now is the clock used to sign; tests skew it. nil means time.Now.
	now func() time.Time
	// beforeUpdate, when set, runs after Apply's prerequisite reads and
	// right before each UPDATE is sent (attempt counts from 1); tests use
	// it to change the RRset in between.
	beforeUpdate func(attempt int)
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
// cached per owner; an owner that a zone transferred from Server in this
// run holds (TransferZone) needs no query. One of Zones that encloses owner
// skips the queries too. Errors are *UpdateError.
func (p *RFC2136) FindZone(ctx context.Context, owner string) (string, error) {
	owner = dns.CanonicalName(owner)
	if zone, err := p.configuredZone(owner); zone != "" || err != nil {
		return zone, err
	}
	p.mu.Lock()
	zone, ok := p.zones[owner]
	p.mu.Unlock()
	if ok {
		return zone, nil
	}
	if zone := p.transferredZone(owner); zone != "" {
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

// configuredZone returns the zone the configuration places owner in: Zone,
// an ErrNotAuth *UpdateError when owner is outside it, else the longest of
// Zones that encloses owner (EnclosingZone); "" and no error when neither
// names one (zone discovery places the owner).
func (p *RFC2136) configuredZone(owner string) (string, error) {
	if p.Zone != "" {
		zone := dns.CanonicalName(p.Zone)
		if !dns.IsSubDomain(zone, dns.CanonicalName(owner)) {
			return "", &UpdateError{Class: ErrNotAuth, Op: "find zone of", Server: p.server(), Zone: zone, Owner: dns.CanonicalName(owner),
				Rcode: -1, KeyName: p.keyName(), Err: fmt.Errorf("the owner is not in the configured zone %q", zone)}
		}
		return zone, nil
	}
	return p.zones0().Enclosing(owner), nil
}

// zones0 is Zones prepared (once) for lookups.
func (p *RFC2136) zones0() ZoneSet {
	p.zoneSetOnce.Do(func() { p.zoneSet = NewZoneSet(p.Zones...) })
	return p.zoneSet
}

// listed reports whether zone is one of Zones (and Zone is not set): the
// operator's word, not the server's answer, placed an owner there.
func (p *RFC2136) listed(zone string) bool {
	return p.Zone == "" && zone != "" && slices.Contains(p.zones0(), dns.CanonicalName(zone))
}

// configured is configuredZone without the error: "" for an owner outside
// Zone.
func (p *RFC2136) configured(owner string) string {
	z, _ := p.configuredZone(owner)
	return z
}

// EnclosingZone returns the longest of zones (domain names, any case, with
// or without the final dot) that is owner or one of its ancestors, in
// canonical form ("example.com."); "" when none is. Label boundaries count:
// "ample.com" does not enclose "mx.example.com". It is NewZoneSet(zones...)
// .Enclosing(owner); callers with many owners keep the ZoneSet.
func EnclosingZone(zones []string, owner string) string {
	return NewZoneSet(zones...).Enclosing(owner)
}

// ZoneSet is a list of zone names prepared for Enclosing: canonical
// ("example.com."), longest first, without empty names or the root.
type ZoneSet []string

// NewZoneSet prepares zones (any case, with or without the final dot) for
// Enclosing.
func NewZoneSet(zones ...string) ZoneSet {
	var s ZoneSet
	for _, z := range zones {
		if strings.TrimSuffix(z, ".") == "" {
			continue // not a zone a provider serves (config refuses it)
		}
		s = append(s, dns.CanonicalName(z))
	}
	slices.SortStableFunc(s, func(a, b string) int { return len(b) - len(a) })
	return s
}

// Enclosing returns the longest zone of s that is owner or one of its
// ancestors ("" when none is), comparing whole labels: one allocation at
// most (owner's canonical form), no per-zone work beyond a comparison (a
// plan of 5,000 owners asks it about 25,000 times).
func (s ZoneSet) Enclosing(owner string) string {
	if len(s) == 0 {
		return ""
	}
	o := dns.CanonicalName(owner)
	for _, z := range s {
		if o == z {
			return z
		}
		if n := len(o) - len(z); n > 0 && o[n-1] == '.' && (n < 2 || o[n-2] != '\\') && o[n:] == z {
			return z
		}
	}
	return ""
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

// AliasError says that a TLSA owner is a CNAME (an alias): TLSA records
// cannot be added beside it (RFC 2136 §3.4.2.2 ignores them, RFC 2181
// §10.1 forbids them); they belong at Target, where resolvers follow the
// alias (RFC 7671 §7). Test with errors.As.
type AliasError struct {
	Owner, Target string // absolute names
}

func (e *AliasError) Error() string {
	return fmt.Sprintf("the owner is an alias (CNAME to %q): publish the TLSA records at the target or remove the CNAME", e.Target)
}

// Records returns the TLSA records served at owner, read by a direct TLSA
// query to Server over TCP with recursion desired off (never a zone
// transfer). NXDOMAIN and NODATA give an empty slice. A CNAME at owner is an
// ErrNotAuth error, because records added there would be ignored (RFC 2136
// §3.4.1.2). Errors are *UpdateError.
func (p *RFC2136) Records(ctx context.Context, owner string) ([]RR, error) {
	_, rrs, err := p.read(ctx, owner)
	return rrs, err
}

// ZoneRecords returns the zone that holds owner and the TLSA records served
// there, with one TLSA query in the usual case instead of FindZone's SOA
// query followed by Records' TLSA query. The zone is taken from the
// authoritative answer itself (RFC 1034 §4.3.2, RFC 2308 §2): the SOA in the
// authority section of a NODATA or NXDOMAIN answer, or the zone's NS RRset in
// the authority section of a positive answer. Only a record whose owner
// encloses owner counts, so a zone cut below a zone the server also serves is
// honoured (the answer comes from the innermost zone). When the answer names
// no zone (a server that sends minimal responses), ZoneRecords falls back to
// FindZone. The zone is cached per owner, as FindZone's; the records are
// never cached. An explicit Zone skips zone discovery (an owner outside it is
// an ErrNotAuth error). Errors are those of FindZone and Records.
func (p *RFC2136) ZoneRecords(ctx context.Context, owner string) (string, []RR, error) {
	if zone, err := p.configuredZone(owner); err != nil {
		return "", nil, err
	} else if zone != "" {
		rrs, err := p.Records(ctx, owner)
		return zone, rrs, err
	}
	zone, rrs, err := p.read(ctx, owner)
	if err != nil {
		return "", nil, err
	}
	if zone == "" {
		if zone, err = p.FindZone(ctx, owner); err != nil {
			return "", nil, err
		}
	}
	return zone, rrs, nil
}

// answerZone is the zone an authoritative TLSA answer r for owner names:
// the enclosing SOA of a negative answer, else the enclosing NS RRset of
// the authority section; "" when it names none (minimal responses).
func answerZone(r *dns.Msg, owner string) string {
	z := enclosingSOA(r, owner)
	if z == "" && len(r.Answer) > 0 {
		for _, rr := range r.Ns {
			if ns, ok := rr.(*dns.NS); ok && dns.IsSubDomain(ns.Hdr.Name, owner) {
				z = dns.CanonicalName(ns.Hdr.Name)
				break
			}
		}
	}
	return z
}

// cnameAt reports whether r's answer holds a CNAME at owner.
func cnameAt(r *dns.Msg, owner string) bool {
	for _, rr := range r.Answer {
		if _, ok := rr.(*dns.CNAME); ok && strings.EqualFold(rr.Header().Name, owner) {
			return true
		}
	}
	return false
}

// read queries the TLSA RRset at owner and returns it with the zone the
// answer names (see ZoneRecords; "" when it names none), remembering that
// zone for owner.
func (p *RFC2136) read(ctx context.Context, owner string) (string, []RR, error) {
	owner = dns.Fqdn(owner)
	q := new(dns.Msg)
	q.SetQuestion(owner, dns.TypeTLSA)
	q.RecursionDesired = false
	zone := p.configured(owner)
	if zone == "" {
		p.mu.Lock()
		zone = p.zones[dns.CanonicalName(owner)]
		p.mu.Unlock()
	}
	r, err := p.exchange(ctx, q, "query TLSA at", zone, owner, "TLSA", &p.queries)
	if err != nil {
		return "", nil, err
	}
	if p.listed(zone) && r.Authoritative && (r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError) {
		// The zones list placed owner; the server's answer says where it
		// is. They differ when a listed name is not a zone (the answer
		// comes from the zone above it) or when a zone below a listed one
		// was left out (an UPDATE to the listed zone would put the record
		// below that zone's cut, where no one sees it).
		if z := answerZone(r, owner); z != "" && z != zone {
			return "", nil, &UpdateError{Class: ErrNotAuth, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
				Rcode: r.Rcode, KeyName: p.keyName(), ListedZone: true,
				Err: fmt.Errorf("the server answers for the owner from zone %q, not from the listed zone %q", z, zone)}
		}
	}
	switch {
	case r.Rcode == dns.RcodeNameError && r.Authoritative && !cnameAt(r, owner):
		// An alias whose target does not exist (yet) is answered NXDOMAIN
		// with the CNAME in the answer (RFC 6604 §2.1: the RCODE is that of
		// the last name of the chain): it is still an alias, read below.
		return p.learnZone(r, owner, zone), []RR{}, nil
	case r.Rcode == dns.RcodeNameError && r.Authoritative:
	case r.Rcode == dns.RcodeRefused || (r.Rcode == dns.RcodeSuccess && !r.Authoritative) || (r.Rcode == dns.RcodeNameError && !r.Authoritative):
		return "", nil, &UpdateError{Class: ErrNotAuth, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
			Rcode: r.Rcode, KeyName: p.keyName(), ListedZone: p.listed(zone), Err: errors.New("the server is not authoritative for the owner (no AA bit or REFUSED)")}
	case r.Rcode != dns.RcodeSuccess:
		return "", nil, p.rcodeError(r, "query TLSA at", zone, owner, "TLSA")
	}
	out := []RR{}
	for _, rr := range r.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		switch v := rr.(type) {
		case *dns.CNAME:
			return "", nil, &UpdateError{Class: ErrNotAuth, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
				Rcode: r.Rcode, KeyName: p.keyName(),
				Err: &AliasError{Owner: owner, Target: dns.Fqdn(v.Target)}}
		case *dns.TLSA:
			rec, err := tlsaRecord(v)
			if err != nil {
				return "", nil, &UpdateError{Class: ErrServer, Op: "query TLSA at", Server: p.server(), Zone: zone, Owner: owner, Type: "TLSA",
					Rcode: r.Rcode, KeyName: p.keyName(), Err: err}
			}
			out = append(out, RR{Owner: owner, TTL: v.Hdr.Ttl, Record: rec})
		}
	}
	return p.learnZone(r, owner, zone), out, nil
}

// tlsaRecord returns the record a TLSA RR holds; an error when its
// certificate association data is not hex.
func tlsaRecord(v *dns.TLSA) (tlsa.Record, error) {
	data, err := hex.DecodeString(v.Certificate)
	if err != nil {
		return tlsa.Record{}, fmt.Errorf("bad TLSA data: %w", err)
	}
	return tlsa.Record{Usage: v.Usage, Selector: v.Selector, MatchingType: v.MatchingType, Data: data}, nil
}

// learnZone returns the zone an authoritative TLSA answer r for owner names
// (known when not ""), and caches it for owner: the enclosing SOA of a
// negative answer, else the enclosing NS RRset of the authority section.
func (p *RFC2136) learnZone(r *dns.Msg, owner, known string) string {
	if known != "" {
		return known
	}
	z := answerZone(r, owner)
	if z != "" {
		p.mu.Lock()
		if p.zones == nil {
			p.zones = map[string]string{}
		}
		p.zones[dns.CanonicalName(owner)] = z
		p.mu.Unlock()
	}
	return z
}

// prerequisiteAttempts bounds how often Apply re-reads an owner and sends a
// UPDATE message again when the server answers NXRRSET because the RRset
// changed between Apply's read and the UPDATE (decision P3).
const prerequisiteAttempts = 4

// Apply sends the Add and Remove changes as RFC 2136 UPDATE messages,
// TSIG-signed, over TCP: one message per zone when the zone's changes fit in
// one DNS message (65535 bytes, TSIG included, RFC 1035 §4.2.2), else as few
// messages as hold them, all additions before all removals (decision S1
// below; Messages says how many a plan takes).
//
// What it changes: a removal deletes only that exact record (class NONE,
// RFC 2136 §2.5.4), never the RRset, so records owned by others survive and
// removing a record that is already gone is a no-op; an addition adds one
// record (§2.5.1; adding a record already served is a no-op). Keep entries
// change nothing; with Prerequisites they name what the removals at their
// owner rely on. Nothing is sent when there is nothing to add or remove.
// Zones are found first (FindZone, cached per owner; up to readWorkers
// owners at a time).
//
// What a failure leaves behind: each UPDATE message is applied atomically by
// the server, all or none (RFC 2136 §3.4, §3.7). A zone whose changes fit in
// one message is changed all or not at all. A zone split over several
// messages is changed message by message: the messages carrying additions go
// first, so a failure leaves at worst some records added and none of that
// zone's removals past the failing message applied — never a removal without
// the additions of the same plan (the error says which UPDATE of how many
// failed). Zones are independent: up to zoneWorkers zones are updated at
// once (decision S2), and one zone's failure stops none of the others; the
// error joins every failing zone's error (errors.Join, in zone name order),
// each naming its zone, so the zones not named were changed. When the answer is lost
// (timeout, connection reset after sending, a truncated answer) the message
// may or may not have been applied: read the records again. Apply is
// idempotent, so sending the same plan again after any failure is safe.
//
// Prerequisites (decisions P1–P4 at the top of this file): at every owner
// where the plan removes a record and keeps at least one (Keep entries at
// that owner), the UPDATE carrying that owner's removals applies only if
// every kept record is still served when the server processes it, so a
// removal never goes through after another writer removed a record it relied
// on; that message then fails with ErrPrerequisite and nothing in it
// changes. All removals of one owner travel in one message with their
// prerequisite, read after the messages before it were applied. Concurrent
// additions, and concurrent removals of records the plan does not keep, are
// not conflicts: Apply reads the owner again and resends (up to
// prerequisiteAttempts sends per message). Removals at an owner where the
// plan keeps nothing carry no prerequisite; additions only "no CNAME RRset
// at the owner" (RFC 2136 §2.4.3): an owner that became an alias refuses
// the message with ErrPrerequisite instead of the addition being silently
// ignored (§3.4.2.2).
//
// Concurrency: Apply may be called from several goroutines on one *RFC2136.
// Other writers (other hosts, nsupdate, other tools) may change the same
// owners at any time: without Prerequisites each record's last writer wins,
// and Apply never deletes a record the plan does not name.
//
// Errors are *UpdateError wrapping ErrTSIG, ErrRefused, ErrNotAuth,
// ErrServer (with ErrTruncated for an answer truncated even over TCP) or
// ErrPrerequisite.
//
// S1. Splitting (why adds first): DESIGN §3 wants a removal only once the
// records that replace it are served. Within one message the server applies
// everything at once; across messages it applies them in the order sent, so
// every message holding an addition is sent before any message holding only
// removals (the last addition message may also carry the first removals: it
// is atomic). The changes are packed in that order, each message as full as
// it can be (its exact wire size with name compression and the TSIG record
// is measured), an owner's removals and its prerequisite never split.
//
// S2. Zones at once (why that keeps the invariant): the order S1 protects
// is within a zone, where one owner's records live. No removal a plan holds
// relies on an addition of the same plan in another zone (a removal is
// decided only from records already aged, which were served before the
// run), so the zones' UPDATEs need no order among them, and a failure in
// one zone is no reason to leave another zone's additions unsent.
func (p *RFC2136) Apply(ctx context.Context, changes []Change) error {
	_, err := p.apply(ctx, changes, nil)
	return err
}

// apply is Apply; with reg set, every removal is also conditional on the
// ownership registry (ApplyClaimed, decisions R1–R4 in registry.go), and
// the removals it did not send are returned.
func (p *RFC2136) apply(ctx context.Context, changes []Change, reg *registryGuard) ([]Conflict, error) {
	zoneOf, err := p.findZones(ctx, changes)
	if err != nil {
		return nil, err
	}
	batches, zones := p.batches(changes, zoneOf)
	tsig := p.tsigLen()
	errs := make([]error, len(zones))
	forEach(len(zones), zoneWorkers, func(i int) {
		b := batches[zones[i]]
		b.reg = reg
		errs[i] = p.applyZone(ctx, b, tsig)
	})
	var conflicts []Conflict
	for _, z := range zones {
		conflicts = append(conflicts, batches[z].conflicts...)
	}
	return conflicts, errors.Join(errs...)
}

// zoneWorkers bounds the zones Apply updates at once (decision S2): the
// UPDATEs of different zones are independent (each zone's messages keep
// their order, S1), and a server applies different zones' UPDATEs in
// parallel, so 10 zones no longer wait for each other's round trips and
// journal writes one by one.
const zoneWorkers = 4

// Messages returns, per zone (absolute, lower case), how many UPDATE
// messages Apply would send for changes: 1 for a zone whose changes fit in
// one DNS message, more when they must be split (decision S1). Prerequisites
// are sized from the plan's own Keep and Remove entries (the RRset as the
// plan read it); a concurrent writer can change that by a few records.
// Zones with nothing to add or remove are absent. It finds zones like Apply
// (cached); errors are FindZone's.
func (p *RFC2136) Messages(ctx context.Context, changes []Change) (map[string]int, error) {
	zoneOf, err := p.findZones(ctx, changes)
	if err != nil {
		return nil, err
	}
	batches, zones := p.batches(changes, zoneOf)
	tsig := p.tsigLen()
	counts := make([]int, len(zones))
	errs := make([]error, len(zones))
	forEach(len(zones), runtime.GOMAXPROCS(0), func(i int) {
		counts[i], errs[i] = batches[zones[i]].estimate(p, tsig)
	})
	out := map[string]int{}
	for i, z := range zones {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[z] = counts[i]
	}
	return out, nil
}

// zoneBatch is the changes of one zone, as the units that travel in UPDATE
// messages: one unit per added record (plan order), then one per owner with
// removals (name order).
type zoneBatch struct {
	zone   string
	units  []unit
	nAdds  int               // units[:nAdds] are additions
	keeps  map[string][]RR   // lower-case owner -> kept records (P2), only at owners with removals
	owners map[string]string // lower-case owner -> owner as given
	// reg, when set, makes every removal unit conditional on the ownership
	// registry (R1–R4 in registry.go); regs holds the registry RRsets read
	// for them (lower-case owner -> TXT RRs, empty when none), conflicts
	// the removals dropped because another host claims them.
	reg       *registryGuard
	regs      map[string][]dns.RR
	conflicts []Conflict
	hint      int     // units the last message packed held (pack)
	per       float64 // bytes a unit cost in the last search's last step (search)
	sized     int     // messages search built and measured (tests)
	p         *RFC2136
	sum       *[sha256.Size]byte // digest, computed once
}

// packRange is units[from:to] of a batch, with the TSIG size packed for.
type packRange struct{ from, to, tsig int }

// maxPackMemo bounds RFC2136.packs: the batches of one run (one per zone
// of a plan) are remembered; older ones are dropped all at once.
const maxPackMemo = 64

// digest returns the SHA-256 of everything msg builds a message of
// additions only from: the zone, and each addition unit's owner as given
// and records (b.units[:b.nAdds], the only ranges pack remembers).
func (b *zoneBatch) digest() [sha256.Size]byte {
	if b.sum != nil {
		return *b.sum
	}
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(b.zone)
	for _, u := range b.units[:b.nAdds] {
		put(b.owners[u.owner])
		binary.BigEndian.PutUint64(n[:], uint64(len(u.changes)))
		h.Write(n[:])
		for _, c := range u.changes {
			// what tlsaRR builds the unit's RRs from
			put(dns.Fqdn(c.Owner))
			binary.BigEndian.PutUint32(n[:4], c.TTL)
			n[4], n[5], n[6] = c.Record.Usage, c.Record.Selector, c.Record.MatchingType
			h.Write(n[:7])
			put(string(c.Record.Data))
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	b.sum = &sum
	return sum
}

// unit is what one UPDATE message carries together: one added record, or
// every removal at one owner (with that owner's prerequisite when guarded).
type unit struct {
	owner   string // lower case
	changes []Change
	remove  bool
	guarded bool // the removals rely on kept records (P2) and Prerequisites is on
	// rrs are the changes as RRs, built once: every message msg builds
	// while packing reuses them (the update helpers set the same class and
	// TTL on them each time, and each RR is in one section only).
	rrs []dns.RR
	// noCNAME, for an addition built by batches, is the "no CNAME RRset
	// at the owner" prerequisite as Msg.RRsetNotUsed makes it (RFC 2136
	// §2.4.3: class NONE, type CNAME, TTL 0, no RDATA), built once; nil
	// means msg lets RRsetNotUsed build it.
	noCNAME *dns.ANY
}

func newUnit(owner string, changes []Change, remove, guarded bool) unit {
	u := unit{owner: owner, changes: changes, remove: remove, guarded: guarded}
	for _, c := range changes {
		u.rrs = append(u.rrs, tlsaRR(c.RR))
	}
	return u
}

func changeRRs(cs []Change) []RR {
	out := make([]RR, len(cs))
	for i, c := range cs {
		out[i] = c.RR
	}
	return out
}

// batches groups the Add and Remove changes by zone (zoneOf: lower-case
// owner -> zone) and returns them with the zones in name order.
func (p *RFC2136) batches(changes []Change, zoneOf map[string]string) (map[string]*zoneBatch, []string) {
	batches := map[string]*zoneBatch{}
	removes := map[string]map[string][]Change{} // zone -> owner -> removals
	var keeps []Change
	// The lower-case owners, and how many additions each zone gets: a
	// zone's addition units, their changes and RRs are each allocated at
	// once (arena), not one by one (5,000 additions: 15,000 allocations).
	owners := make([]string, len(changes))
	nAdds := map[string]int{}
	for i, c := range changes {
		if c.Op == Add || c.Op == Remove {
			owners[i] = dns.CanonicalName(c.Owner)
		}
		if c.Op == Add {
			nAdds[zoneOf[owners[i]]]++
		}
	}
	arenas := map[string]*arena{}
	hexOf := map[string]string{} // association data -> hex: owners of one lineage share their records
	for i, c := range changes {
		if c.Op == Keep {
			keeps = append(keeps, c)
			continue
		}
		if c.Op != Add && c.Op != Remove {
			continue
		}
		o := owners[i]
		zone := zoneOf[o]
		b := batches[zone]
		if b == nil {
			n := nAdds[zone]
			b = &zoneBatch{zone: zone, keeps: map[string][]RR{}, owners: make(map[string]string, n), p: p, units: make([]unit, 0, n)}
			batches[zone] = b
			removes[zone] = map[string][]Change{}
			arenas[zone] = &arena{changes: make([]Change, 0, n), rrs: make([]dns.RR, 0, n), tlsas: make([]dns.TLSA, 0, n), anys: make([]dns.ANY, 0, n)}
		}
		if _, ok := b.owners[o]; !ok {
			b.owners[o] = dns.Fqdn(c.Owner)
		}
		if c.Op == Add {
			b.units = append(b.units, arenas[zone].addUnit(o, c, hexOf))
		} else {
			removes[zone][o] = append(removes[zone][o], c)
		}
	}
	// A Keep counts only at an owner where the same plan removes a record
	// (P2): then its zone is the removal's, already found.
	for _, c := range keeps {
		o := dns.CanonicalName(c.Owner)
		if z, ok := zoneOf[o]; ok {
			if _, removing := removes[z][o]; removing {
				batches[z].keeps[o] = append(batches[z].keeps[o], c.RR)
			}
		}
	}
	zones := make([]string, 0, len(batches))
	for z, b := range batches {
		zones = append(zones, z)
		b.nAdds = len(b.units)
		var owners []string
		for o := range removes[z] {
			owners = append(owners, o)
		}
		sort.Strings(owners)
		for _, o := range owners {
			b.units = append(b.units, newUnit(o, removes[z][o], true, p.Prerequisites && len(b.keeps[o]) > 0))
		}
	}
	sort.Strings(zones)
	return batches, zones
}

// arena holds the addition units of one zone's batch: their changes, RRs
// and "no CNAME" prerequisites, allocated once for all of them.
type arena struct {
	changes []Change
	rrs     []dns.RR
	tlsas   []dns.TLSA
	anys    []dns.ANY
}

// addUnit returns the unit of addition c at lower-case owner o, as
// newUnit(o, []Change{c}, false, false) builds it, in a's arrays; hexOf
// caches the records' hex (tlsaRR's Certificate).
func (a *arena) addUnit(o string, c Change, hexOf map[string]string) unit {
	h, ok := hexOf[string(c.Record.Data)]
	if !ok {
		h = hex.EncodeToString(c.Record.Data)
		hexOf[string(c.Record.Data)] = h
	}
	name := dns.Fqdn(c.Owner)
	a.changes = append(a.changes, c)
	a.tlsas = append(a.tlsas, dns.TLSA{
		Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: c.TTL},
		Usage: c.Record.Usage, Selector: c.Record.Selector, MatchingType: c.Record.MatchingType, Certificate: h,
	})
	a.rrs = append(a.rrs, &a.tlsas[len(a.tlsas)-1])
	a.anys = append(a.anys, dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassNONE}})
	k := len(a.changes) - 1
	return unit{owner: o, changes: a.changes[k : k+1 : k+1], rrs: a.rrs[k : k+1 : k+1], noCNAME: &a.anys[k]}
}

// msg builds the UPDATE carrying units: the prerequisites of its guarded
// units (RFC 2136 §2.4.2, the whole RRset as read), then removals (§2.5.4),
// then additions (§2.5.1).
func (b *zoneBatch) msg(units []unit, prereqs map[string][]RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(b.zone)
	m.Compress = true
	nrr := 0
	for _, u := range units {
		nrr += len(u.rrs)
	}
	m.Answer = make([]dns.RR, 0, len(units))
	m.Ns = make([]dns.RR, 0, nrr)
	for _, u := range units {
		if u.guarded {
			rrs := make([]dns.RR, 0, len(prereqs[u.owner]))
			for _, rr := range prereqs[u.owner] {
				rrs = append(rrs, tlsaRR(rr))
			}
			m.Used(rrs)
		}
		if u.remove && b.reg != nil {
			b.registryPrerequisite(m, u.owner)
		}
	}
	for _, u := range units {
		if u.remove {
			m.Remove(u.rrs)
		}
	}
	for _, u := range units {
		if !u.remove {
			m.Insert(u.rrs)
		}
	}
	// Never add beside a CNAME: each owner that gets an addition must have
	// no CNAME RRset (RFC 2136 §2.4.3), so an owner that became an alias
	// since it was read refuses the message (YXRRSET) instead of the
	// addition being silently ignored (§3.4.2.2). One such RR per owner
	// is the least RFC 2136 allows (no prerequisite names several
	// owners). It costs 12 bytes while the owner's name in it lies within
	// the first 16 KB of the message (the addition's name is then a
	// 2-byte pointer to it) and 28 bytes after that: compression pointers
	// are 14-bit offsets (RFC 1035 §4.1.4), so a name written past 16 KB
	// is never a pointer target and the addition spells it out again.
	// 3 1 1 additions at _25._tcp.hNNNNN.<zone>: 1,040 fit in a message
	// without the guard, 821 with it (about 860 for nsupdate 9.18, which
	// does not compress).
	guarded := make(map[string]bool, len(units))
	for _, u := range units {
		if !u.remove && !guarded[u.owner] {
			guarded[u.owner] = true
			if u.noCNAME != nil && u.noCNAME.Hdr.Name == b.owners[u.owner] {
				m.Answer = append(m.Answer, u.noCNAME)
			} else {
				m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: b.owners[u.owner], Rrtype: dns.TypeCNAME, Class: dns.ClassINET}}})
			}
		}
	}
	return m
}

// aliasError is the error of an UPDATE refused with YXRRSET: an owner
// that gets an addition is a CNAME now (the "no CNAME" prerequisite).
func (p *RFC2136) aliasError(b *zoneBatch, owner string, r *dns.Msg, part, parts int) error {
	return &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: b.zone, Owner: owner, Type: "TLSA",
		KeyName: p.keyName(), Rcode: r.Rcode, Part: part, Parts: parts,
		Err: errors.New("an owner that gets an addition is now a CNAME (alias): nothing in this message was changed; re-run to publish at the CNAME's target")}
}

// pack returns how many of units, from the first, one UPDATE message can
// carry: its exact wire size (name compression on) plus tsig bytes of TSIG
// record must stay within dns.MaxMsgSize (65535, the most a TCP length
// prefix allows, RFC 1035 §4.2.2). 0 means the first unit alone is too large.
//
// Each size tried is one message built and measured, O(units), so the
// search starts from what the zone's previous message held (b.hint): the
// messages of one zone usually hold the same number of units, and two
// sizes then settle it; and it steps by the measured bytes per unit
// (search). 5,000 additions: about 12,000 units measured (24,000 when
// the first message stepped by powers of two, 82,000 before the hint).
//
// units must be a suffix-bounded slice of b.units (b.units[i:j]); when it
// holds additions only (j <= b.nAdds) the answer is remembered on b.p
// (RFC2136.packs), so that Apply does not pack again what Messages packed.
func (b *zoneBatch) pack(units []unit, prereqs map[string][]RR, tsig int) int {
	var key packRange
	var sum [sha256.Size]byte
	memo := false
	if b.p != nil && len(units) > 0 {
		from := cap(b.units) - cap(units) // units is b.units[from:to]
		if from >= 0 && from < len(b.units) && &b.units[from] == &units[0] && from+len(units) <= b.nAdds {
			memo = true
			key = packRange{from, from + len(units), tsig}
			sum = b.digest()
			b.p.mu.Lock()
			k, ok := b.p.packs[sum][key]
			b.p.mu.Unlock()
			if ok {
				if k > 0 {
					b.hint = k
				}
				return k
			}
		}
	}
	k := b.search(units, prereqs, tsig)
	if k > 0 {
		b.hint = k
	}
	if memo {
		b.p.mu.Lock()
		if b.p.packs[sum] == nil {
			if b.p.packs == nil || len(b.p.packs) >= maxPackMemo {
				b.p.packs = map[[sha256.Size]byte]map[packRange]int{}
			}
			b.p.packs[sum] = map[packRange]int{}
		}
		b.p.packs[sum][key] = k
		b.p.mu.Unlock()
	}
	return k
}

// search returns how many of units, from the first, fit in one message
// (pack). It measures a size (one message built, Msg.Len) and steps from it
// by the bytes a unit costs, per: the message sizes are nearly linear in
// the units past the first 16 KB, so from the zone's previous message
// (b.hint, b.per) or the first guess two or three sizes settle it where
// stepping by powers of two from a wrong guess took a dozen (5,000
// additions: 15 sizes measured instead of 25). The answer is always proven:
// the units returned fit and one more does not (or there is none). Every
// other probe bisects once a few probes have not settled it, so an uneven
// unit size (an owner with many removals) costs at most about twice the
// sizes a plain bisection measures.
func (b *zoneBatch) search(units []unit, prereqs map[string][]RR, tsig int) int {
	size := func(n int) int {
		b.sized++
		return b.msg(units[:n], prereqs).Len() + tsig
	}
	n := len(units)
	lo, sLo := 0, 0   // lo units fit, in sLo bytes (sLo unknown while lo is 0)
	hi, sHi := n+1, 0 // hi units do not fit, in sHi bytes (n+1: none measured)
	h, per := b.hint, b.per
	if h <= 0 && n > guessProbe {
		h, per = b.guess(units, prereqs, tsig)
	}
	if h <= 0 || h > n {
		h = n
	}
	for probe := 1; ; probe++ {
		sz := size(h)
		if sz <= dns.MaxMsgSize {
			lo, sLo = h, sz
		} else {
			hi, sHi = h, sz
		}
		if lo == n || hi-lo <= 1 {
			break
		}
		switch {
		case lo > 0 && hi <= n:
			per = float64(sHi-sLo) / float64(hi-lo)
		case per <= 0:
			per = float64(sz) / float64(h)
		}
		var next int
		switch {
		case per <= 0 || probe >= 4 && probe%2 == 0: // sizes that do not grow with the units, or slow progress
			next = lo + (hi-lo)/2
		case sz <= dns.MaxMsgSize:
			next = h + int(float64(dns.MaxMsgSize-sz)/per)
		default:
			next = h - int(math.Ceil(float64(sz-dns.MaxMsgSize)/per))
		}
		h = min(max(next, lo+1), hi-1)
	}
	if lo > 0 && hi <= n && hi > lo {
		b.per = float64(sHi-sLo) / float64(hi-lo)
	}
	return lo
}

// guessProbe is the number of units guess measures: 3 1 1 additions past
// it lie beyond the first 16 KB of a message, where each costs the same.
const guessProbe = 512

// guess returns where the first search of a zone starts (no b.hint yet):
// the units that fit if each past the first guessProbe costs what the
// units between 64 and guessProbe cost on average, and that cost in bytes
// (two messages built instead of one of every unit; the search then
// measures the guess and moves from it). 0 when the probe does not fit.
func (b *zoneBatch) guess(units []unit, prereqs map[string][]RR, tsig int) (int, float64) {
	small := b.msg(units[:64], prereqs).Len()
	large := b.msg(units[:guessProbe], prereqs).Len()
	if large+tsig > dns.MaxMsgSize || large <= small {
		return 0, 0
	}
	per := float64(large-small) / float64(guessProbe-64)
	return guessProbe + int(float64(dns.MaxMsgSize-tsig-large)/per), per
}

func (b *zoneBatch) tooLarge(p *RFC2136, u unit) error {
	n := b.msg([]unit{u}, nil).Len()
	return &UpdateError{Class: ErrServer, Op: "update", Server: p.server(), Zone: b.zone, Owner: b.owners[u.owner], Type: "TLSA", Rcode: -1,
		KeyName: p.keyName(), Err: fmt.Errorf("the %d changes at this owner and its prerequisite make an UPDATE of more than %d bytes (%d without the prerequisite), more than one DNS message can carry: remove records at the owner in smaller steps", len(u.changes), dns.MaxMsgSize, n)}
}

// tsigLen returns the size in bytes of the TSIG record the key adds to a
// message (RFC 8945 §4.2; 0 unsigned), measured by signing an empty UPDATE.
func (p *RFC2136) tsigLen() int {
	if p.Key == nil {
		return 0
	}
	m := new(dns.Msg)
	m.SetUpdate(".")
	unsigned, err := m.Pack()
	if err != nil {
		return 512
	}
	m.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, p.clock().Unix())
	signed, _, err := dns.TsigGenerate(m, p.Key.Secret, "", false)
	if err != nil {
		return 512 // larger than any TSIG record of a supported algorithm
	}
	return len(signed) - len(unsigned)
}

// applyZone sends one zone's changes (decision S1): while the remaining
// additions need more than one message, messages of additions only; then,
// after reading the prerequisites (P3) of the removals, the rest, each
// message as full as it can be.
func (p *RFC2136) applyZone(ctx context.Context, b *zoneBatch, tsig int) error {
	owner := ""
	if len(b.owners) == 1 {
		for _, o := range b.owners {
			owner = o
		}
	}
	// split is set once the packing needs a second message; parts(part)
	// is then how many messages the zone takes, for the error messages of
	// a split zone: estimated only when an error is reported (a packing of
	// the whole zone costs as much as the packing itself).
	split := false
	parts := func(part int) int {
		if !split {
			return 0
		}
		n, err := b.estimate(p, tsig)
		if err != nil {
			n = 0
		}
		return max(n, part, 2)
	}
	var prereqs map[string][]RR // nil until read
	var err error
	for i, part := 0, 1; i < len(b.units); part++ {
		if part > 1 {
			split = true
		}
		if prereqs == nil && i < b.nAdds {
			k := b.pack(b.units[i:b.nAdds], nil, tsig)
			if k == 0 {
				return b.tooLarge(p, b.units[i])
			}
			if i+k < b.nAdds {
				split = true
				r, err := p.send(ctx, b, b.units[i:i+k], nil, owner, 1)
				if err == nil && r.Rcode == dns.RcodeYXRrset {
					return p.aliasError(b, owner, r, part, parts(part))
				}
				if err == nil && r.Rcode != dns.RcodeSuccess {
					err = p.rcodeError(r, "update", b.zone, owner, "TLSA")
				}
				if err != nil {
					return numbered(p.diagnose(ctx, err), part, parts(part)) // D1–D3 in diagnose.go
				}
				i += k
				continue
			}
		}
		if prereqs == nil {
			// The remaining additions fit in one message: read what the
			// removals rely on now, after the messages before were applied.
			if prereqs, err = p.prerequisites(ctx, b, b.units[i:]); err != nil {
				return numbered(err, part, parts(part))
			}
			if _, err := p.readRegistries(ctx, b, i, b.units[i:]); err != nil {
				return numbered(err, part, parts(part))
			}
		}
		redo := false
		for attempt := 1; i < len(b.units); attempt++ {
			k := b.pack(b.units[i:], prereqs, tsig)
			if k == 0 {
				return b.tooLarge(p, b.units[i])
			}
			if i+k < len(b.units) {
				split = true
			}
			units := b.units[i : i+k]
			r, err := p.send(ctx, b, units, prereqs, owner, attempt)
			if err != nil {
				return numbered(p.diagnose(ctx, err), part, parts(part)) // D1–D3 in diagnose.go
			}
			claimed := b.reg != nil && slices.ContainsFunc(units, func(u unit) bool { return u.remove })
			if r.Rcode == dns.RcodeYXRrset && claimed {
				// R2: a registry read empty has claims now ("RRset does
				// not exist" failed), or an owner became a CNAME.
				changed, err := p.readRegistries(ctx, b, i, units)
				if err != nil {
					return numbered(err, part, parts(part))
				}
				if changed && attempt < prerequisiteAttempts {
					continue
				}
				if changed {
					b.giveUp(i, i+k, attempt)
					redo = true
					break
				}
			}
			if r.Rcode == dns.RcodeYXRrset && slices.ContainsFunc(units, func(u unit) bool { return !u.remove }) {
				return p.aliasError(b, owner, r, part, parts(part))
			}
			guarded := slices.ContainsFunc(units, func(u unit) bool { return u.guarded })
			if r.Rcode == dns.RcodeNXRrset && (guarded || claimed) {
				// P3: an RRset changed between our read and the UPDATE;
				// read again, and give up only when a kept record is gone
				// (prerequisite) or the owner keeps changing. R2: the same
				// for the registry; a removal another host claims now is
				// dropped (a Conflict), and when the registry keeps
				// changing the removals wait for the next run.
				if attempt < prerequisiteAttempts {
					again, err := p.prerequisites(ctx, b, units)
					if err != nil {
						return numbered(err, part, parts(part))
					}
					maps.Copy(prereqs, again)
					if _, err := p.readRegistries(ctx, b, i, units); err != nil {
						return numbered(err, part, parts(part))
					}
					continue
				}
				if claimed {
					b.giveUp(i, i+k, attempt)
					redo = true
					break
				}
				return &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: b.zone, Owner: owner, Type: "TLSA",
					KeyName: p.keyName(), Rcode: r.Rcode, Part: part, Parts: parts(part),
					Err: fmt.Errorf("the TLSA RRset changed between reading it and the UPDATE %d times in a row (another writer is busy there)", attempt)}
			}
			if r.Rcode != dns.RcodeSuccess {
				return numbered(p.diagnose(ctx, p.rcodeError(r, "update", b.zone, owner, "TLSA")), part, parts(part))
			}
			// What this message added is part of the RRsets the later
			// messages' prerequisites name (else each would fail once).
			for _, u := range units {
				if rrs, ok := prereqs[u.owner]; ok && !u.remove && !slices.ContainsFunc(rrs, func(rr RR) bool { return rr.Record.Equal(u.changes[0].Record) }) {
					prereqs[u.owner] = append(rrs, u.changes[0].RR)
				}
			}
			i += k
			break
		}
		if redo {
			part-- // the same message again, without the dropped removals
		}
	}
	return nil
}

// send sends the UPDATE carrying units and returns the server's answer.
func (p *RFC2136) send(ctx context.Context, b *zoneBatch, units []unit, prereqs map[string][]RR, owner string, attempt int) (*dns.Msg, error) {
	m := b.msg(units, prereqs)
	if p.beforeUpdate != nil {
		p.beforeUpdate(attempt)
	}
	return p.exchange(ctx, m, "update", b.zone, owner, "TLSA", &p.updates)
}

// estimate returns how many UPDATE messages b takes, sizing prerequisites
// from the plan's Keep and Remove entries (the RRset as the plan read it).
func (b *zoneBatch) estimate(p *RFC2136, tsig int) (int, error) {
	prereqs := map[string][]RR{}
	for _, u := range b.units {
		if u.guarded {
			prereqs[u.owner] = append(slices.Clone(b.keeps[u.owner]), changeRRs(u.changes)...)
		}
	}
	// By the time a removal goes, the owner's additions were sent in an
	// earlier message or go in the same one: its prerequisite names them
	// too (as applyZone's does).
	for _, u := range b.units {
		if rrs, ok := prereqs[u.owner]; ok && !u.remove {
			prereqs[u.owner] = append(rrs, changeRRs(u.changes)...)
		}
	}
	n := 0
	for i := 0; i < len(b.units); n++ {
		k := b.pack(b.units[i:], prereqs, tsig)
		if k == 0 {
			return 0, b.tooLarge(p, b.units[i])
		}
		i += k
	}
	return n, nil
}

// numbered sets the message number on an *UpdateError of a split zone.
func numbered(err error, part, parts int) error {
	var ue *UpdateError
	if parts > 1 && errors.As(err, &ue) {
		ue.Part, ue.Parts = part, parts
	}
	return err
}

// prerequisites reads, up to readWorkers at a time, the TLSA RRset at every
// guarded owner of units (P3) and returns them by lower-case owner, after
// checking that the records each owner's removals rely on are in it (P2).
// It returns an empty, non-nil map when no unit is guarded. Errors are those
// of prerequisite, the first in unit order.
func (p *RFC2136) prerequisites(ctx context.Context, b *zoneBatch, units []unit) (map[string][]RR, error) {
	var owners []string
	for _, u := range units {
		if u.guarded {
			owners = append(owners, u.owner)
		}
	}
	rrsets := make([][]RR, len(owners))
	errs := make([]error, len(owners))
	forEach(len(owners), readWorkers, func(i int) {
		rrsets[i], errs[i] = p.prerequisite(ctx, b.zone, b.owners[owners[i]], b.keeps[owners[i]])
	})
	out := make(map[string][]RR, len(owners))
	for i, o := range owners {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[o] = rrsets[i]
	}
	return out, nil
}

// prerequisite reads the TLSA RRset at owner (in zone) from the server and
// returns it, the value-dependent prerequisite "RRset exists" (RFC 2136
// §2.4.2), after checking that every kept record is in it (P2). A kept record
// that is no longer served is an ErrPrerequisite error naming it.
func (p *RFC2136) prerequisite(ctx context.Context, zone, owner string, keeps []RR) ([]RR, error) {
	served, err := p.Records(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, k := range keeps {
		if !slices.ContainsFunc(served, func(rr RR) bool { return rr.Record.Equal(k.Record) }) {
			return nil, &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: zone, Owner: dns.Fqdn(owner), Type: "TLSA",
				KeyName: p.keyName(), Rcode: -1,
				Err: fmt.Errorf("TLSA %s, which the planned removal relies on, is no longer served (another writer removed it since the plan was read)", k.Record)}
		}
	}
	return served, nil
}

// readWorkers bounds the queries an RFC2136 has in flight at once for one
// call (zone discovery, prerequisite reads): enough to hide the round trip
// of each TCP query, few enough not to look like a flood to the server.
const readWorkers = 32

// forEach runs f(0) … f(n-1), up to workers at a time, and waits for all.
func forEach(n, workers int, f func(i int)) {
	// workers goroutines take the indexes in turn (not one goroutine per
	// index, each growing its stack anew).
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// findZones returns the zone of every owner that changes, keyed by lower-case
// owner, running up to readWorkers FindZone calls at a time (owners whose
// zone is cached cost nothing). On failure it returns the error of the first
// failing owner in plan order.
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
	// Owners whose zone is known (Zone or Zones, or cached by a read) are
	// looked up here; only the others start a FindZone that queries (one
	// goroutine each, up to readWorkers at a time).
	var unknown []int
	p.mu.Lock()
	for i, o := range owners {
		if zones[i], errs[i] = p.configuredZone(o); zones[i] != "" || errs[i] != nil {
			continue // no query: Zone or Zones places o
		}
		if z, ok := p.zones[o]; ok {
			zones[i] = z
		} else {
			unknown = append(unknown, i)
		}
	}
	p.mu.Unlock()
	forEach(len(unknown), readWorkers, func(j int) {
		i := unknown[j]
		zones[i], errs[i] = p.FindZone(ctx, owners[i])
	})
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
// answer. A TSIG error in the answer, a truncated answer (TC bit, wrapping
// ErrTruncated), a TSIG verification failure, an unsigned success answer to
// a signed request and transport failures are returned as *UpdateError;
// RCODEs are left to the caller.
func (p *RFC2136) exchange(ctx context.Context, m *dns.Msg, op, zone, owner, typ string, counter *atomic.Int64) (*dns.Msg, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	signed := p.Key != nil && !isUnsigned(ctx)
	signedAt := p.clock() // the Time Signed the server compares with its clock (RFC 8945 §5.2.3)
	if signed {
		m.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, signedAt.Unix())
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	server := p.server()
	base := UpdateError{Op: op, Server: server, Zone: zone, Owner: owner, Type: typ, KeyName: p.keyName(), KeyAlgorithm: p.keyAlgorithm(), Rcode: -1, ListedZone: p.listed(zone)}

	counter.Add(1)
	var r *dns.Msg
	var err error
	if m.Opcode == dns.OpcodeQuery {
		r, err = p.pipeExchange(ctx, m, server) // decision T2, pipeline.go
	} else {
		c := &dns.Client{Net: "tcp", Timeout: timeout}
		if signed {
			c.TsigSecret = map[string]string{p.keyName(): p.Key.Secret}
		}
		r, err = exchangeContext(ctx, c, m, server)
	}
	if r != nil {
		base.Rcode = r.Rcode
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			// RFC 8945 §5.2: the server rejected our TSIG; it answers NOTAUTH
			// with the TSIG error (BADSIG and BADKEY unsigned, §5.3.2).
			e := base
			e.Class, e.TSIGError = ErrTSIG, t.Error
			if t.Error == dns.RcodeBadTime {
				e.LocalTime, e.Fudge = signedAt, t.Fudge
				e.ServerTime = serverTime(t)
			}
			return nil, &e
		}
		if r.Truncated {
			// Over TCP there is nothing to retry on (decision T1): a
			// truncated answer is neither a success nor an RRset.
			e := base
			e.Class, e.Err = ErrServer, ErrTruncated
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
		case errors.Is(err, context.Canceled):
			e.Class, e.Rcode = ErrServer, -1
			e.Err = fmt.Errorf("stopped waiting for the answer: %w", err)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			e.Class, e.Rcode = ErrServer, -1
			e.Err = fmt.Errorf("no answer within %v: %w", timeout, err)
		default:
			e.Class, e.Rcode = ErrServer, -1
			e.Err = fmt.Errorf("exchange failed: %w", err)
		}
		return nil, &e
	}
	if signed && r.Rcode == dns.RcodeNotAuth && r.IsTsig() == nil && m.Opcode == dns.OpcodeQuery {
		// D3 (diagnose.go): NOTAUTH to a signed query is a TSIG failure
		// (RFC 8945 §5.2); PowerDNS sends it without a TSIG record.
		e := base
		e.Class, e.Err = ErrTSIG, errUntoldTSIG
		return nil, &e
	}
	if signed && r.Rcode == dns.RcodeSuccess && r.IsTsig() == nil {
		e := base
		e.Class, e.Err = ErrTSIG, errors.New("the server's NOERROR answer to a signed request is not signed")
		return nil, &e
	}
	return r, nil
}

// exchangeContext is c.ExchangeContext, except that a cancelled ctx also
// stops the wait for the answer: miekg/dns (v1.1.73) uses ctx only to dial
// and for its deadline, so after a SIGTERM the read would wait for the whole
// timeout. The error then wraps context.Canceled and the context's cause.
func exchangeContext(ctx context.Context, c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	var r *dns.Msg
	co, err := c.DialContext(ctx, server)
	if err == nil {
		defer co.Close()
		defer context.AfterFunc(ctx, func() { _ = co.SetDeadline(time.Now()) })()
		r, _, err = c.ExchangeWithConnContext(ctx, m, co)
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), context.Canceled)
	}
	return r, err
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
	return &UpdateError{Class: class, Op: op, Server: p.server(), Zone: zone, Owner: owner, Type: typ, KeyName: p.keyName(), Rcode: r.Rcode, ListedZone: p.listed(zone)}
}
