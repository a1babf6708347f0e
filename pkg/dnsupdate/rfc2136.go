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
	// Prerequisites protects removals for several writers at one owner
	// (decisions P1–P4 at the top of this file): a removal is applied only
	// if every record the plan keeps at that owner (its Keep entries) is
	// still served when the server processes the UPDATE; otherwise the
	// zone's UPDATE fails with ErrPrerequisite and nothing in it changes.
	// Records added or removed meanwhile by others that the plan does not
	// keep are no conflict (Apply reads again and resends). It costs one
	// TLSA query per owner with a removal and a Keep entry.
	Prerequisites bool

	mu    sync.Mutex
	zones map[string]string // lower-case owner -> zone

	updates, queries atomic.Int64

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
// ErrNotAuth error wrapping an *AliasError naming the target, because
// records added there would be ignored (RFC 2136 §3.4.2.2). Errors are
// *UpdateError.
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
				Err: &AliasError{Owner: owner, Target: dns.Fqdn(v.Target)}}
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

// prerequisiteAttempts bounds how often Apply re-reads an owner and sends a
// zone's UPDATE again when the server answers NXRRSET because the RRset
// changed between Apply's read and the UPDATE (decision P3).
const prerequisiteAttempts = 4

// Apply sends the Add and Remove changes as one RFC 2136 UPDATE message per
// zone, TSIG-signed, over TCP.
//
// What it changes: a removal deletes only that exact record (class NONE,
// RFC 2136 §2.5.4), never the RRset, so records owned by others survive and
// removing a record that is already gone is a no-op; an addition adds one
// record (§2.5.1; adding a record already served is a no-op). Keep entries
// change nothing; with Prerequisites they name what the removals at their
// owner rely on. Nothing is sent when there is nothing to add or remove.
// Zones are found first (FindZone, up to 8 owners at a time).
//
// What a failure leaves behind: the changes of one zone are one UPDATE,
// which the server applies atomically, all or none (RFC 2136 §3.4, §3.7).
// Zones are updated one after the other in name order; when one fails, the
// zones before it stay changed, the zones after it are not attempted, and
// the error names the failing zone. When the answer is lost (timeout,
// connection reset after sending, a truncated answer) the zone's UPDATE may
// or may not have been applied: read the records again. Apply is idempotent,
// so sending the same plan again after any failure is safe.
//
// Every owner that gets an addition carries the prerequisite "no CNAME
// RRset" (RFC 2136 §2.4.3): an owner that became an alias refuses the
// zone's UPDATE with ErrPrerequisite instead of the addition being
// silently ignored (§3.4.2.2).
//
// Prerequisites (decisions P1–P4 at the top of this file): at every owner
// where the plan removes a record and keeps at least one (Keep entries at
// that owner), the UPDATE applies only if every kept record is still served
// when the server processes it, so a removal never goes through after
// another writer removed a record it relied on; the whole zone's UPDATE then
// fails with ErrPrerequisite and nothing in that zone changes. Concurrent
// additions, and concurrent removals of records the plan does not keep, are
// not conflicts: Apply reads the owner again and resends (up to
// prerequisiteAttempts UPDATEs per zone). Removals at an owner where the
// plan keeps nothing carry no prerequisite (additions only the "no CNAME" one).
//
// Concurrency: Apply may be called from several goroutines on one *RFC2136.
// Other writers (other hosts, nsupdate, other tools) may change the same
// owners at any time: without Prerequisites each record's last writer wins,
// and Apply never deletes a record the plan does not name.
//
// Errors are *UpdateError wrapping ErrTSIG, ErrRefused, ErrNotAuth,
// ErrServer (with ErrTruncated for an answer truncated even over TCP) or
// ErrPrerequisite.
func (p *RFC2136) Apply(ctx context.Context, changes []Change) error {
	type batch struct {
		zone          string
		adds, removes []Change
		keeps         map[string][]Change // lower-case owner -> kept records
		owners        map[string]bool
		firstOwner    string
	}
	zoneOf, err := p.findZones(ctx, changes)
	if err != nil {
		return err
	}
	batches := map[string]*batch{}
	var keeps []Change
	for _, c := range changes {
		if c.Op == Keep {
			keeps = append(keeps, c)
			continue
		}
		if c.Op != Add && c.Op != Remove {
			continue
		}
		zone := zoneOf[dns.CanonicalName(c.Owner)]
		b := batches[zone]
		if b == nil {
			b = &batch{zone: zone, owners: map[string]bool{}, keeps: map[string][]Change{}, firstOwner: dns.Fqdn(c.Owner)}
			batches[zone] = b
		}
		b.owners[dns.CanonicalName(c.Owner)] = true
		if c.Op == Add {
			b.adds = append(b.adds, c)
		} else {
			b.removes = append(b.removes, c)
		}
	}
	// A Keep counts only at an owner where the same plan removes a record
	// (P2): then its zone is the removal's, already found.
	for _, c := range keeps {
		o := dns.CanonicalName(c.Owner)
		if z, ok := zoneOf[o]; ok {
			b := batches[z]
			b.keeps[o] = append(b.keeps[o], c)
		}
	}
	zones := make([]string, 0, len(batches))
	for z := range batches {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		b := batches[z]
		owner := ""
		if len(b.owners) == 1 {
			owner = b.firstOwner
		}
		// The owners whose removals rely on kept records (P2), in name order.
		var guarded []string
		if p.Prerequisites {
			removing := map[string]bool{}
			for _, c := range b.removes {
				removing[dns.CanonicalName(c.Owner)] = true
			}
			for o := range b.keeps {
				if removing[o] {
					guarded = append(guarded, o)
				}
			}
			sort.Strings(guarded)
		}
		for attempt := 1; ; attempt++ {
			m := new(dns.Msg)
			m.SetUpdate(z)
			m.Compress = true
			for _, o := range guarded {
				prereq, err := p.prerequisite(ctx, z, o, b.keeps[o])
				if err != nil {
					return err
				}
				m.Used(prereq)
			}
			for _, c := range b.removes {
				m.Remove([]dns.RR{tlsaRR(c.RR)})
			}
			for _, c := range b.adds {
				m.Insert([]dns.RR{tlsaRR(c.RR)})
			}
			// Never add beside a CNAME: each owner that gets an addition
			// must have no CNAME RRset (RFC 2136 §2.4.3), so an owner that
			// became an alias since it was read refuses the whole UPDATE
			// (YXRRSET) instead of silently ignoring the addition (§3.4.2.2).
			for _, o := range aliasGuards(b.adds) {
				m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeCNAME, Class: dns.ClassINET}}})
			}
			if n := m.Len() + 200; n > dns.MaxMsgSize {
				return &UpdateError{Class: ErrServer, Op: "update", Server: p.server(), Zone: z, Owner: owner, Type: "TLSA", Rcode: -1,
					KeyName: p.keyName(), Err: fmt.Errorf("%d changes make a %d-byte UPDATE, more than one DNS message can carry (%d bytes); apply them in smaller plans", len(b.adds)+len(b.removes), n, dns.MaxMsgSize)}
			}
			if p.beforeUpdate != nil {
				p.beforeUpdate(attempt)
			}
			r, err := p.exchange(ctx, m, "update", z, owner, "TLSA", &p.updates)
			if err != nil {
				return p.diagnose(ctx, err) // D1–D3 in diagnose.go
			}
			if r.Rcode == dns.RcodeNXRrset && len(guarded) > 0 {
				// P3: the RRset changed between our read and the UPDATE;
				// read again, and give up only when a kept record is gone
				// (prerequisite) or the owner keeps changing.
				if attempt < prerequisiteAttempts {
					continue
				}
				return &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: z, Owner: owner, Type: "TLSA",
					KeyName: p.keyName(), Rcode: r.Rcode, Err: fmt.Errorf("the TLSA RRset changed between reading it and the UPDATE %d times in a row (another writer is busy there)", attempt)}
			}
			if r.Rcode == dns.RcodeYXRrset && len(b.adds) > 0 {
				return &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: z, Owner: owner, Type: "TLSA",
					KeyName: p.keyName(), Rcode: r.Rcode, Err: errors.New("an owner that gets an addition is now a CNAME (alias): nothing was changed in the zone; re-run to publish at the CNAME's target")}
			}
			if r.Rcode != dns.RcodeSuccess {
				return p.diagnose(ctx, p.rcodeError(r, "update", z, owner, "TLSA"))
			}
			break
		}
	}
	return nil
}

// aliasGuards returns the owners of adds, once each, in name order: the
// names whose UPDATE carries the "no CNAME" prerequisite.
func aliasGuards(adds []Change) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range adds {
		o := dns.Fqdn(c.Owner)
		if !seen[dns.CanonicalName(o)] {
			seen[dns.CanonicalName(o)] = true
			out = append(out, o)
		}
	}
	sort.Strings(out)
	return out
}

// prerequisite reads the TLSA RRset at owner (in zone) from the server and
// returns it as the value-dependent prerequisite "RRset exists" (RFC 2136
// §2.4.2), after checking that every kept record is in it (P2). A kept record
// that is no longer served is an ErrPrerequisite error naming it.
func (p *RFC2136) prerequisite(ctx context.Context, zone, owner string, keeps []Change) ([]dns.RR, error) {
	served, err := p.Records(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, k := range keeps {
		found := false
		for _, rr := range served {
			if rr.Record.Equal(k.Record) {
				found = true
				break
			}
		}
		if !found {
			return nil, &UpdateError{Class: ErrPrerequisite, Op: "update", Server: p.server(), Zone: zone, Owner: dns.Fqdn(owner), Type: "TLSA",
				KeyName: p.keyName(), Rcode: -1,
				Err: fmt.Errorf("TLSA %s, which the planned removal relies on, is no longer served (another writer removed it since the plan was read)", k.Record)}
		}
	}
	out := make([]dns.RR, 0, len(served))
	for _, rr := range served {
		out = append(out, tlsaRR(rr))
	}
	return out, nil
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
// answer. A TSIG error in the answer, a truncated answer (TC bit, wrapping
// ErrTruncated), a TSIG verification failure, an unsigned success answer to
// a signed request and transport failures are returned as *UpdateError;
// RCODEs are left to the caller.
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
	r, err := exchangeContext(ctx, c, m, server)
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
	if p.Key != nil && r.Rcode == dns.RcodeNotAuth && r.IsTsig() == nil && m.Opcode == dns.OpcodeQuery {
		// D3 (diagnose.go): NOTAUTH to a signed query is a TSIG failure
		// (RFC 8945 §5.2); PowerDNS sends it without a TSIG record.
		e := base
		e.Class, e.Err = ErrTSIG, errUntoldTSIG
		return nil, &e
	}
	if p.Key != nil && r.Rcode == dns.RcodeSuccess && r.IsTsig() == nil {
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
	return &UpdateError{Class: class, Op: op, Server: p.server(), Zone: zone, Owner: owner, Type: typ, KeyName: p.keyName(), Rcode: r.Rcode}
}
