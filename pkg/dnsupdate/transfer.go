package dnsupdate

// Reads at scale by zone transfer (decision X1). BIND answers a direct TLSA
// query in 20–50 µs of CPU; at 5,000 owners in one zone, one read per owner
// at the primary and one at each secondary cost the server more than the
// UPDATE itself (issue 12 measured 2–3× the one-nsupdate floor). One AXFR
// (RFC 5936) of the zone moves every record in a few messages for a
// fraction of that. So when a run reads many owners of one zone
// (TransferMinOwners), it may read the zone once by AXFR, signed with the
// provider's key, and take each owner's TLSA RRset from the copy — but only
// where the copy says exactly what a direct query would answer
// (Zone.Lookup): an owner at or below a zone cut or a DNAME, an owner that
// is a CNAME, and a missing owner a wildcard could synthesize are read by a
// direct query as before. A server that refuses the transfer (most
// secondaries allow none; allow-transfer in BIND, acl in Knot,
// allow-axfr-ips / TSIG-ALLOW-AXFR in PowerDNS) costs one refused request,
// and the owners are read one by one. A transfer larger than the caller's
// bound (a big zone with few of our owners) is abandoned the same way.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TransferMinOwners is the fewest owners of one zone, read in one run, for
// which reading the zone by transfer beats a direct query per owner: below
// it the queries cost less than moving the zone. Measured with 1,000 owners
// in 10 zones (100 each) on BIND: 2.9× the one-nsupdate floor with a
// threshold of 200 (direct reads), 1.4× with 64 (transfers). TransferLimit
// keeps a big zone holding few of the owners from being moved.
const TransferMinOwners = 64

// TransferLimit is the most records a caller lets a transfer move for n
// owners of the zone: beyond it, the zone holds much more than the owners
// read, and direct queries are cheaper. A signed zone holds about four
// records per TLSA owner (TLSA, NSEC, two RRSIGs).
func TransferLimit(n int) int { return 16*n + 4096 }

// ErrTransferTooLarge is wrapped by the error TransferZone returns when the
// zone holds more records than its limit: the transfer was abandoned.
var ErrTransferTooLarge = errors.New("the zone holds more records than the transfer limit")

// Zone is one server's copy of a zone as an AXFR returned it (RFC 5936),
// reduced to what reading TLSA owners needs. It is safe for concurrent
// reads.
type Zone struct {
	// Name is the zone's canonical name ("example.com.").
	Name string
	// Server is the "host:port" the copy came from.
	Server string
	// SOA is the zone's SOA record, the first of the transfer.
	SOA *dns.SOA
	// Records is how many records the transfer moved (the SOA twice).
	Records int

	tlsa   map[string][]RR     // canonical owner -> its TLSA records
	nodes  map[string]bool     // canonical names holding any record
	cname  map[string]bool     // canonical names holding a CNAME
	cuts   map[string]bool     // canonical non-apex NS owners (zone cuts)
	dnames map[string]bool     // canonical DNAME owners
	wild   map[string]bool     // parents of wildcard owners ("*.x." -> "x.")
	txt    map[string][]dns.RR // canonical registry names -> their TXT records
}

// Lookup returns the TLSA records at owner as an authoritative direct query
// to the server would have answered when the copy was made (an empty,
// non-nil slice for NXDOMAIN and NODATA), each with Owner set to owner as
// given, and true. It returns false when the copy cannot say: owner outside
// the zone, at or below a zone cut, below a DNAME, a CNAME (read it with
// Records, which reports the alias), or a name that does not exist while a
// wildcard above it could synthesize an answer (RFC 4592).
func (z *Zone) Lookup(owner string) ([]RR, bool) {
	name := dns.CanonicalName(owner)
	if z.cname[name] || !z.holds(name) {
		return nil, false
	}
	if !z.predicts(name) {
		return nil, false
	}
	out := make([]RR, 0, len(z.tlsa[name]))
	for _, rr := range z.tlsa[name] {
		rr.Owner = dns.Fqdn(owner)
		out = append(out, rr)
	}
	return out, true
}

// Claims returns the ownership registry's claims at owner (the TXT
// records at RegistryName(owner)) as Claims would read them by a direct
// query when the copy was made, and true; false where the copy cannot say
// (as Lookup).
func (z *Zone) Claims(owner string) ([]Claim, bool) {
	name := dns.CanonicalName(RegistryName(owner))
	if z.cname[name] || !z.holds(name) || !z.predicts(name) {
		return nil, false
	}
	return parseClaims(owner, z.txt[name]), true
}

// predicts reports whether a direct query for the canonical name, which
// the zone holds and which is no CNAME, is answered from the name's own
// records: it exists, or no wildcard above it could synthesize an answer
// (RFC 4592).
func (z *Zone) predicts(name string) bool {
	if z.nodes[name] {
		return true
	}
	for a := parent(name); ; a = parent(a) {
		if z.wild[a] {
			return false
		}
		if a == z.Name || a == "." {
			return true
		}
	}
}

// holds reports whether the canonical name belongs to the zone: inside it,
// not at or below a zone cut, not below a DNAME.
func (z *Zone) holds(name string) bool {
	if !under(z.Name, name) {
		return false
	}
	for a := name; a != z.Name; a = parent(a) {
		if z.cuts[a] || (a != name && z.dnames[a]) {
			return false
		}
	}
	return true
}

// under reports whether the canonical name is zone or below it: a suffix
// test on label boundaries (dns.IsSubDomain splits both names into labels
// and cost a 5,000-owner run 40 ms), exact for names without escapes.
func under(zone, name string) bool {
	if strings.Contains(name, "\\") || strings.Contains(zone, "\\") {
		return dns.IsSubDomain(zone, name)
	}
	if zone == "." {
		return true
	}
	return name == zone || (strings.HasSuffix(name, zone) && name[len(name)-len(zone)-1] == '.')
}

// transferredZone returns the zone that holds owner among the zones p
// transferred in this run (TransferZone remembers them), or "".
func (p *RFC2136) transferredZone(owner string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.transfers) == 0 {
		return ""
	}
	for a := owner; ; a = parent(a) {
		if z := p.transfers[a]; z != nil {
			if z.holds(owner) {
				return z.Name
			}
			return ""
		}
		if a == "." {
			return ""
		}
	}
}

// parent returns the name one label up ("a.b." -> "b.", "a." -> ".").
func parent(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end || i >= len(name) {
		return "."
	}
	return name[i:]
}

// TransferZone reads zone from server ("host:port"; "" is Server) by AXFR
// over TCP (RFC 5936), signed with Key (RFC 8945 §5.3.1 covers the
// multi-message answer; without a Key the request is unsigned), and returns
// the copy. A copy from Server itself, signed (or without a Key), is
// remembered: FindZone (and so Messages and Apply) then places the owners
// it holds in its zone without asking. Each message must arrive within
// Timeout (DefaultTimeout when 0); ctx cancels it. It stops and returns an
// error wrapping
// ErrTransferTooLarge once more than maxRecords records arrived (0: no
// limit). Any other failure — a refusal (REFUSED, NOTAUTH), a TSIG that
// does not verify, a broken stream — is an error naming the server and the
// zone; the caller reads owner by owner instead. The secret never appears
// in an error.
func (p *RFC2136) TransferZone(ctx context.Context, server, zone string, maxRecords int) (*Zone, error) {
	if server == "" {
		server = p.server()
	}
	zone = dns.CanonicalName(zone)
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fail := func(err error) error {
		return fmt.Errorf("transfer (AXFR) of zone %s from %s: %w", zone, server, err)
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, fail(err)
	}
	defer nc.Close()
	defer context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })()
	t := &dns.Transfer{Conn: &dns.Conn{Conn: nc}, ReadTimeout: timeout, WriteTimeout: timeout}
	q := new(dns.Msg)
	q.SetAxfr(zone)
	if p.Key != nil && !isUnsigned(ctx) {
		t.TsigSecret = map[string]string{p.keyName(): p.Key.Secret}
		q.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, p.clock().Unix())
	}
	p.queries.Add(1)
	ch, err := t.In(q, server)
	if err != nil {
		return nil, fail(err)
	}
	// The reader goroutine of miekg/dns sends until the stream ends; after
	// an early return, drain it so that it can close the connection.
	drained := false
	defer func() {
		if !drained {
			_ = nc.Close()
			go func() {
				for range ch {
				}
			}()
		}
	}()
	z := &Zone{Name: zone, Server: server, tlsa: map[string][]RR{}, nodes: map[string]bool{}, cname: map[string]bool{},
		cuts: map[string]bool{}, dnames: map[string]bool{}, wild: map[string]bool{}, txt: map[string][]dns.RR{}}
	for env := range ch {
		if env.Error != nil {
			if ctx.Err() != nil {
				return nil, fail(fmt.Errorf("%w (%w)", context.Cause(ctx), env.Error))
			}
			return nil, fail(transferError(env.Error))
		}
		z.Records += len(env.RR)
		if maxRecords > 0 && z.Records > maxRecords {
			return nil, fail(fmt.Errorf("%w (%d)", ErrTransferTooLarge, maxRecords))
		}
		for _, rr := range env.RR {
			if err := z.add(rr); err != nil {
				return nil, fail(err)
			}
		}
	}
	drained = true
	if z.SOA == nil {
		return nil, fail(errors.New("the transfer holds no SOA record"))
	}
	if server == p.server() && (p.Key == nil || !isUnsigned(ctx)) {
		// What the UPDATEs change: FindZone places owners from it.
		p.mu.Lock()
		if p.transfers == nil {
			p.transfers = map[string]*Zone{}
		}
		p.transfers[zone] = z
		p.mu.Unlock()
	}
	return z, nil
}

// transferError says what a failed transfer means for the operator.
func transferError(err error) error {
	var rcode int
	if _, serr := fmt.Sscanf(err.Error(), "dns: bad xfr rcode: %d", &rcode); serr == nil {
		// miekg/dns v1.1.73 reports a refused AXFR by the RCODE's number.
		return fmt.Errorf("the server answered %s: it allows no transfer to this key or address", dns.RcodeToString[rcode])
	}
	switch {
	case errors.Is(err, dns.ErrAuth), errors.Is(err, dns.ErrSig), errors.Is(err, dns.ErrNoSig), errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrTime), errors.Is(err, dns.ErrKeyAlg):
		return fmt.Errorf("the answer's TSIG did not verify (%w): the server does not know this key, or refused unsigned", err)
	}
	return err
}

// add files one transferred record.
func (z *Zone) add(rr dns.RR) error {
	h := rr.Header()
	name := strings.ToLower(h.Name)
	if !under(z.Name, name) {
		return fmt.Errorf("the transfer holds %s, outside the zone", h.Name)
	}
	z.nodes[name] = true
	if strings.HasPrefix(name, "*.") {
		z.wild[name[2:]] = true
	}
	switch v := rr.(type) {
	case *dns.SOA:
		if name == z.Name && z.SOA == nil {
			z.SOA = v
		}
	case *dns.TLSA:
		rec, err := tlsaRecord(v)
		if err != nil {
			return fmt.Errorf("at %s: %w", h.Name, err)
		}
		z.tlsa[name] = append(z.tlsa[name], RR{Owner: h.Name, TTL: h.Ttl, Record: rec})
	case *dns.CNAME:
		z.cname[name] = true
	case *dns.NS:
		if name != z.Name {
			z.cuts[name] = true
		}
	case *dns.DNAME:
		z.dnames[name] = true
	case *dns.TXT:
		if strings.HasPrefix(name, RegistryPrefix) {
			z.txt[name] = append(z.txt[name], v)
		}
	}
	return nil
}
