package propagate

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/tlsa"
)

// DefaultTimeout bounds each DNS query (one UDP attempt, and the TCP retry
// after a truncated answer) when Checker.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// HiddenName is the Name of a server that comes from Checker.Hidden rather
// than from the zone's NS RRset.
const HiddenName = "hidden"

// Checker finds the authoritative servers of a zone and asks each of them
// what it serves. The zero value is not usable: Primary is required. A
// Checker is safe for concurrent use once configured.
type Checker struct {
	// Primary is the address of the primary server, "ip:port" (for example
	// "127.0.0.1:53" or "[2001:db8::1]:53"). The NS RRset, the SOA serial
	// every other server is compared with, and the addresses of in-zone NS
	// names are read from it.
	Primary string
	// Port is the port queried on the addresses derived from NS names;
	// 0 means 53.
	Port int
	// Hidden lists hidden secondaries: authoritative servers that are not in
	// the NS RRset but still serve the zone (to resolvers that are
	// configured with them, or as stealth secondaries). Each is "ip",
	// "ip:port", "[ipv6]:port", "host" or "host:port"; a port omitted means
	// Port, a host name is resolved like an out-of-zone NS name.
	Hidden []string
	// Resolver is the optional address, "ip:port", of a recursive resolver:
	// out-of-zone NS names and hidden host names are resolved there, and
	// DNSSEC asks it for the parent's DS and for the AD bit (which only a
	// validating resolver sets). Empty means out-of-zone names are asked at
	// the primary, and DS and validation are not checked. The system
	// resolver is never used.
	Resolver string
	// Timeout bounds each query attempt (the UDP query, and the TCP retry
	// after a truncated answer); 0 means DefaultTimeout.
	Timeout time.Duration
	// TTL is the TTL the operator configured for the TLSA records, in
	// seconds; 0 means not configured. Observe copies it into
	// Observation.ConfiguredTTL, and ageing waits for the larger of it and
	// the TTLs the servers report.
	TTL uint32
	// RequireDNSSEC makes DNSSEC return an error (ErrUnsigned, ErrInsecure)
	// instead of only a warning when the zone is unsigned or known to be
	// insecure.
	RequireDNSSEC bool
	// Transfer, when set, reads zone from server ("ip:port") by zone
	// transfer for owners owners (dnsupdate.RFC2136.TransferZone, decision
	// X1 there). ObserveOwners calls it for a server at which it would ask
	// TransferMin or more owners' TLSA RRsets, and takes each owner's RRset
	// from the copy instead of asking, where the copy can tell
	// (ZoneCopy.TLSA) and the copy's SOA is exactly the one the server
	// gives the unsigned SOA query (the transfer may be signed with a key
	// that selects another view than resolvers see). On any error, or
	// another SOA, the owners are asked one by one as without it.
	Transfer func(ctx context.Context, server, zone string, owners int) (ZoneCopy, error)
	// TransferMin is the fewest owners asked at one server for which
	// Transfer is tried; 0 with Transfer set means 1.
	TransferMin int
	// Debug, when set, receives what the checker decided that the operator
	// may want to know at --verbose (a transfer refused, another view), as
	// a message and key/value pairs (log/slog's form). It is called from
	// several goroutines at once (one per server).
	Debug func(msg string, args ...any)
}

// ZoneCopy is one server's copy of a zone, read by zone transfer.
type ZoneCopy interface {
	// SOA is the zone's SOA record as the transfer began with it.
	SOA() *dns.SOA
	// TLSA returns the TLSA RRset at owner as a direct query to that
	// server would have answered (records in any order; the smallest of
	// their TTLs in seconds, 0 when there are none), and false when the
	// copy cannot say (a zone cut, a CNAME, a wildcard).
	TLSA(owner string) (recs []tlsa.Record, ttl uint32, ok bool)
}

func (c *Checker) debug(msg string, args ...any) {
	if c.Debug != nil {
		c.Debug(msg, args...)
	}
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// check validates the configuration every query needs.
func (c *Checker) check() error {
	if c.Primary == "" {
		return errors.New("propagate: no primary server configured")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("propagate: port %d is not a number from 1 to 65535", c.Port)
	}
	return nil
}

func (c *Checker) port() int {
	if c.Port > 0 {
		return c.Port
	}
	return 53
}

// Server is one authoritative server address of a zone.
type Server struct {
	// Name is the NS host name (absolute, lower case) the address belongs
	// to, or HiddenName for a configured hidden secondary.
	Name string `json:"name"`
	// Addr is the address queried, "ip:port"; empty when Name could not be
	// resolved to any address.
	Addr string `json:"addr,omitempty"`
	// Err says why the server could not be found or asked; empty when all
	// went well.
	Err string `json:"error,omitempty"`
}

// label names s in messages: "ns2.example.com. (192.0.2.2:53)".
func (s Server) label() string {
	switch {
	case s.Addr == "":
		return s.Name
	case s.Name == "":
		return s.Addr
	}
	return s.Name + " (" + s.Addr + ")"
}

// Servers returns every authoritative server address of zone: each A and
// AAAA address of each name in the zone's NS RRset as the primary serves it,
// on Port, then the hidden secondaries; sorted by name then address, each
// address once. An NS name or hidden host that cannot be resolved is still
// returned, with an empty Addr and Err saying why, so that callers see and
// report it rather than wait without it. The error is non-nil only when the
// NS RRset itself cannot be read (the primary is unreachable, does not
// answer authoritatively — wrapping ErrNotAuthoritative — or has no NS
// records) or a hidden entry is malformed.
func (c *Checker) Servers(ctx context.Context, zone string) ([]Server, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	zone = canonical(zone)
	q := query{name: zone, qtype: dns.TypeNS}
	r, err := c.exchange(ctx, c.Primary, q)
	if err != nil {
		return nil, fmt.Errorf("read NS of zone %q: %w", zone, err)
	}
	if err := authoritative(r, c.Primary, q, false); err != nil {
		return nil, fmt.Errorf("read NS of zone %q: %w", zone, err)
	}
	var names []string
	for _, rr := range r.Answer {
		if ns, ok := rr.(*dns.NS); ok && sameName(ns.Hdr.Name, zone) {
			names = append(names, canonical(ns.Ns))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("read NS of zone %q at %s: no NS records: %w", zone, c.Primary, ErrNotAuthoritative)
	}
	slices.Sort(names)
	names = slices.Compact(names)

	type found struct {
		addrs []netip.Addr
		err   error
	}
	results := make([]found, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			a, err := c.resolve(ctx, zone, name)
			results[i] = found{a, err}
		})
	}
	wg.Wait()

	var servers []Server
	for i, name := range names {
		if results[i].err != nil {
			servers = append(servers, Server{Name: name, Err: results[i].err.Error()})
			continue
		}
		for _, a := range results[i].addrs {
			servers = append(servers, Server{Name: name, Addr: netip.AddrPortFrom(a, uint16(c.port())).String()})
		}
	}
	hidden, err := c.hidden(ctx, zone)
	if err != nil {
		return nil, err
	}
	servers = append(servers, hidden...)
	return dedupe(servers), nil
}

// dedupe keeps the first Server of each address; servers without an address
// are all kept.
func dedupe(servers []Server) []Server {
	seen := map[string]bool{}
	out := servers[:0]
	for _, s := range servers {
		if s.Addr != "" {
			if seen[s.Addr] {
				continue
			}
			seen[s.Addr] = true
		}
		out = append(out, s)
	}
	return out
}

// resolve returns every A and AAAA address of host, sorted. Names inside
// zone are asked at the primary, which is authoritative for them; others at
// the resolver when one is configured (recursion desired), else at the
// primary, which may also serve their zone.
func (c *Checker) resolve(ctx context.Context, zone, host string) ([]netip.Addr, error) {
	addr, recursive := c.Primary, false
	if !dns.IsSubDomain(zone, host) && c.Resolver != "" {
		addr, recursive = c.Resolver, true
	}
	var (
		addrs []netip.Addr
		errs  []error
	)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := query{name: host, qtype: qtype, recursive: recursive}
		r, err := c.exchange(ctx, addr, q)
		if err == nil && r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			err = fmt.Errorf("query %s at %s: server answered %s", q, addr, dns.RcodeToString[r.Rcode])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range r.Answer {
			if !sameName(rr.Header().Name, host) {
				continue // NS names must not be aliases (RFC 2181 §10.3)
			}
			var ip net.IP
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("resolve %q: %w", host, errors.Join(errs...))
		}
		hint := ""
		if !dns.IsSubDomain(zone, host) && c.Resolver == "" {
			hint = " (out-of-zone name asked at the primary; configure a resolver)"
		}
		return nil, fmt.Errorf("resolve %q at %s: no A or AAAA records%s", host, addr, hint)
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(addrs), nil
}

// hidden turns Checker.Hidden into servers named HiddenName.
func (c *Checker) hidden(ctx context.Context, zone string) ([]Server, error) {
	var out []Server
	for _, h := range c.Hidden {
		host, port, err := splitHidden(h, c.port())
		if err != nil {
			return nil, err
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, Server{Name: HiddenName, Addr: netip.AddrPortFrom(a.Unmap(), port).String()})
			continue
		}
		addrs, err := c.resolve(ctx, zone, canonical(host))
		if err != nil {
			out = append(out, Server{Name: HiddenName, Err: fmt.Sprintf("hidden secondary %q: %v", h, err)})
			continue
		}
		for _, a := range addrs {
			out = append(out, Server{Name: HiddenName, Addr: netip.AddrPortFrom(a, port).String()})
		}
	}
	return out, nil
}

// splitHidden parses one Checker.Hidden entry: "ip", "ip:port",
// "[ipv6]:port", "host" or "host:port"; a missing port is def.
func splitHidden(s string, def int) (host string, port uint16, err error) {
	if s == "" {
		return "", 0, fmt.Errorf("hidden secondary %q: empty address", s)
	}
	if a, err := netip.ParseAddr(s); err == nil { // a bare IPv4 or IPv6 address
		return a.String(), uint16(def), nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		if _, ok := dns.IsDomainName(s); ok && !strings.Contains(s, ":") {
			return s, uint16(def), nil
		}
		return "", 0, fmt.Errorf("hidden secondary %q: want ip, ip:port or host:port: %w", s, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("hidden secondary %q: port %q is not a number from 1 to 65535", s, p)
	}
	if _, ok := dns.IsDomainName(h); h == "" || !ok {
		return "", 0, fmt.Errorf("hidden secondary %q: %q is neither an IP address nor a host name", s, h)
	}
	return h, uint16(n), nil
}

// Observation is what every authoritative server of a zone served at one
// TLSA owner, at one moment. All fields are plain data for JSON.
type Observation struct {
	// Zone is the zone name, absolute and lower case.
	Zone string `json:"zone"`
	// Owner is the TLSA owner name, absolute and lower case.
	Owner string `json:"owner"`
	// Primary is the primary's address and PrimarySerial its SOA serial;
	// a server with an older serial (RFC 1982) is lagging.
	Primary       string `json:"primary"`
	PrimarySerial uint32 `json:"primary_serial"`
	// NegativeTTL is the zone's negative-caching TTL in seconds,
	// min(SOA TTL, SOA MINIMUM) at the primary (RFC 2308 §5): how long a
	// resolver may remember that the owner had no (such) record.
	NegativeTTL uint32 `json:"negative_ttl"`
	// ConfiguredTTL is the TTL the operator configured for the records, in
	// seconds (Checker.TTL), 0 when not configured.
	ConfiguredTTL uint32 `json:"configured_ttl,omitempty"`
	// Servers holds one entry per authoritative server address, in the
	// order of Checker.Servers.
	Servers []ServerState `json:"servers"`
}

// ServerState is what one server answered. Its JSON form lists Records in
// presentation form ("3 1 1 <hex>").
type ServerState struct {
	Server
	// Reachable is true when the server answered both queries (SOA and
	// TLSA), whatever the answer.
	Reachable bool `json:"reachable"`
	// Serial is the server's SOA serial for the zone (0 when unknown).
	Serial uint32 `json:"serial"`
	// Lagging is true when the server answered with a serial older than
	// the primary's (RFC 1982): it has not yet transferred the latest
	// version of the zone.
	Lagging bool `json:"lagging"`
	// Records is the TLSA RRset the server serves at the owner, sorted by
	// presentation form; empty when the owner has no TLSA records there.
	Records []tlsa.Record `json:"records"`
	// TTL is the TTL of that RRset in seconds (0 when there is none).
	TTL uint32 `json:"ttl"`
}

// OK reports whether the server answered authoritatively, with no error.
func (s ServerState) OK() bool { return s.Reachable && s.Err == "" }

// Serves reports whether the server serves rec at the owner.
func (s ServerState) Serves(rec tlsa.Record) bool {
	return slices.ContainsFunc(s.Records, rec.Equal)
}

// Observe asks every server of zone (Checker.Servers) for the TLSA RRset at
// owner and for the zone's SOA serial, concurrently, and returns what each
// answered. A server that cannot be reached, or answers without authority,
// is reported in its ServerState (Reachable false, or Err set), not as an
// error. The error is non-nil when owner is not inside zone, or when the
// primary's SOA or the NS RRset cannot be read (the primary is unreachable,
// or does not answer authoritatively: ErrNotAuthoritative).
func (c *Checker) Observe(ctx context.Context, zone, owner string) (*Observation, error) {
	obs, err := c.ObserveOwners(ctx, zone, []string{owner})
	if err != nil {
		return nil, err
	}
	return obs[0], nil
}

// OwnerWorkers bounds the TLSA queries ObserveOwners has in flight at once
// on each server.
const OwnerWorkers = 32

// pipelineMin is the number of owners from which ObserveOwners pipelines a
// server's TLSA queries on one TCP connection (pipeline.go) instead of one
// UDP exchange each.
const pipelineMin = 8

// ObserveOwners is Observe for many owners of one zone, in the order given:
// what is common to the zone is asked once — the primary's SOA, the NS
// RRset and its addresses (Servers), each server's SOA serial — and then
// each server is asked for the TLSA RRset at every owner, up to
// OwnerWorkers queries in flight per server, all servers at once (from
// pipelineMin owners on, pipelined on one TCP connection per server). So n
// owners on s servers cost n × s TLSA queries plus 2 + s + 2 × (NS names)
// others, instead of n × (2 + 3 s + 2 × NS names). Each Observation is
// what Observe would return for its owner; the servers' serials are those
// of one moment for all of them. Errors are Observe's (an owner outside
// zone is named); on error no observation is returned.
func (c *Checker) ObserveOwners(ctx context.Context, zone string, owners []string) ([]*Observation, error) {
	return c.ObserveOwnersKnown(ctx, zone, owners, nil)
}

// Known is what the caller already read, by a direct TLSA query, at one
// authoritative server for owners it observes with ObserveOwnersKnown (the
// provider's own read at the primary): the observation takes those answers
// instead of asking that server the same questions again.
type Known struct {
	// Addr is the server the answers came from, "ip:port"; it matches the
	// server of the zone with the same address (IPv4-mapped IPv6 and
	// zero-padded forms compare equal). A host name matches nothing.
	Addr string
	// Answers holds one entry per owner, in the order of the owners given
	// to ObserveOwnersKnown; nil entries (and a short slice) are asked as
	// usual.
	Answers []*Answer
}

// Answer is one server's TLSA RRset at one owner: its records (any order,
// duplicates allowed) and the RRset's TTL in seconds (the smallest of the
// records' TTLs; 0 when there are none).
type Answer struct {
	Records []tlsa.Record
	TTL     uint32
}

// ObserveOwnersKnown is ObserveOwners taking the answers in known (nil:
// none) for the server at known.Addr instead of asking it for the TLSA
// RRsets again; that server's SOA serial is still asked. Everything else,
// errors included, is ObserveOwners'.
func (c *Checker) ObserveOwnersKnown(ctx context.Context, zone string, owners []string, known *Known) ([]*Observation, error) {
	zone = canonical(zone)
	names := make([]string, len(owners))
	for i, o := range owners {
		names[i] = canonical(o)
		if !dns.IsSubDomain(zone, names[i]) {
			return nil, fmt.Errorf("observe %q: owner is not inside zone %q", names[i], zone)
		}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	primary, err := c.askSOA(ctx, c.Primary, zone)
	if err != nil {
		return nil, fmt.Errorf("read SOA of zone %q from the primary: %w", zone, err)
	}
	servers, err := c.Servers(ctx, zone)
	if err != nil {
		return nil, err
	}
	out := make([]*Observation, len(names))
	for i, o := range names {
		out[i] = &Observation{
			Zone:          zone,
			Owner:         o,
			Primary:       c.Primary,
			PrimarySerial: primary.serial,
			NegativeTTL:   primary.negativeTTL,
			ConfiguredTTL: c.TTL,
			Servers:       make([]ServerState, len(servers)),
		}
	}
	var wg sync.WaitGroup
	for si, s := range servers {
		for _, obs := range out {
			obs.Servers[si] = ServerState{Server: s}
		}
		if s.Addr == "" {
			continue
		}
		var given []*Answer
		if known != nil && sameAddr(known.Addr, s.Addr) {
			given = known.Answers
		}
		wg.Go(func() {
			var z soa
			var soaErr error
			var inner sync.WaitGroup
			inner.Go(func() { z, soaErr = c.askSOA(ctx, s.Addr, zone) })
			type answer struct {
				recs []tlsa.Record
				ttl  uint32
				err  error
			}
			answers := make([]answer, len(names))
			answered := make([]bool, len(names)) // without a query
			ask := len(names)
			for i := range min(len(given), len(names)) {
				if a := given[i]; a != nil {
					answers[i] = answer{recs: sortedRecords(a.Records), ttl: a.TTL}
					answered[i] = true
					ask--
				}
			}
			if c.Transfer != nil && ask >= max(c.TransferMin, 1) {
				zc, err := c.Transfer(ctx, s.Addr, zone, ask)
				inner.Wait() // the unsigned SOA, to compare
				if err == nil && zc != nil && soaErr == nil && z.rr != nil && !dns.IsDuplicate(z.rr, zc.SOA()) {
					// The SOA was asked while the transfer ran: a zone
					// that changed in between (a secondary applying an
					// IXFR) differs. Asked again now, the version the
					// copy holds is the one unsigned queries see, or not.
					if again, err := c.askSOA(ctx, s.Addr, zone); err == nil && again.rr != nil && dns.IsDuplicate(again.rr, zc.SOA()) {
						z = again
					}
				}
				switch {
				case err != nil || zc == nil:
					c.debug("reading owner by owner: no zone transfer", "server", s.Addr, "zone", zone, "owners", ask, "error", err)
				case soaErr != nil:
					// The owners' queries below report the server.
				case z.rr == nil || !dns.IsDuplicate(z.rr, zc.SOA()):
					c.debug("reading owner by owner: the zone transfer's SOA is not what unsigned queries see (another view, or the zone changed meanwhile)",
						"server", s.Addr, "zone", zone, "transfer_serial", zc.SOA().Serial, "unsigned_serial", z.serial)
				default:
					from := 0
					for i, o := range names {
						if answered[i] {
							continue
						}
						if recs, ttl, ok := zc.TLSA(o); ok {
							answers[i] = answer{recs: sortedRecords(recs), ttl: ttl}
							answered[i] = true
							ask--
							from++
						}
					}
					c.debug("owners read from the zone transfer", "server", s.Addr, "zone", zone, "owners", from, "asked_directly", ask)
				}
			}
			var pp *tcpPipe
			if ask >= pipelineMin {
				if p, err := dialPipe(ctx, s.Addr); err == nil {
					pp = p
					defer pp.close()
				}
			}
			sem := make(chan struct{}, OwnerWorkers)
			for i, o := range names {
				if answered[i] {
					continue
				}
				sem <- struct{}{}
				inner.Go(func() {
					defer func() { <-sem }()
					a := &answers[i]
					a.recs, a.ttl, a.err = c.askTLSAOn(ctx, pp, s.Addr, o)
				})
			}
			inner.Wait()
			for i, obs := range out {
				a := answers[i]
				obs.Servers[si] = serverState(s, z, soaErr, a.recs, a.ttl, a.err, primary.serial)
			}
		})
	}
	wg.Wait()
	if err := expired(ctx); err != nil { // servers cut short would look unreachable
		if len(names) == 1 {
			return nil, fmt.Errorf("observe %q: %w", names[0], err)
		}
		return nil, fmt.Errorf("observe %d owners in zone %q: %w", len(names), zone, err)
	}
	return out, nil
}

// expired returns ctx's error, or context.DeadlineExceeded once its
// deadline has passed: a socket read cut short by the deadline can return
// before the context's own timer marks it done.
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// serverState is what server s answered: the zone's SOA (z, soaErr) and
// the TLSA RRset at the owner (recs, ttl, tlsaErr).
func serverState(s Server, z soa, soaErr error, recs []tlsa.Record, ttl uint32, tlsaErr error, primarySerial uint32) ServerState {
	st := ServerState{Server: s, Records: recs, TTL: ttl}
	st.Reachable = !unreachable(soaErr) && !unreachable(tlsaErr)
	if soaErr == nil {
		st.Serial = z.serial
		st.Lagging = serialBehind(z.serial, primarySerial)
	}
	if unreachable(soaErr) && unreachable(tlsaErr) {
		tlsaErr = nil // the same failure twice says nothing more
	}
	var msgs []string
	for _, err := range []error{soaErr, tlsaErr} {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		st.Err = strings.Join(msgs, "; ")
		st.Records, st.TTL = nil, 0
	}
	return st
}

// unreachable reports whether err means no answer came back at all (as
// opposed to an answer that was not authoritative or not usable).
func unreachable(err error) bool {
	return err != nil && !errors.Is(err, ErrNotAuthoritative) && !errors.Is(err, errBadRecord)
}

var errBadRecord = errors.New("bad TLSA record")

// askTLSAOn asks addr for the TLSA RRset at owner and returns its records,
// sorted by presentation form, and the RRset's TTL in seconds (the smallest
// of the records' TTLs; 0 when there are none). NXDOMAIN and NODATA both
// mean no records.
// The query is pipelined on pp when it is not nil (pipeline.go); when pp's
// connection fails it is asked the ordinary way (exchange).
func (c *Checker) askTLSAOn(ctx context.Context, pp *tcpPipe, addr, owner string) ([]tlsa.Record, uint32, error) {
	q := query{name: owner, qtype: dns.TypeTLSA}
	var r *dns.Msg
	err := errPipeFailed
	if pp != nil {
		r, err = pp.exchange(ctx, c, addr, q)
	}
	if errors.Is(err, errPipeFailed) {
		r, err = c.exchange(ctx, addr, q)
	}
	if err != nil {
		return nil, 0, err
	}
	if err := authoritative(r, addr, q, true); err != nil {
		return nil, 0, err
	}
	var (
		recs []tlsa.Record
		ttl  uint32
	)
	for _, rr := range r.Answer {
		t, ok := rr.(*dns.TLSA)
		if !ok || !sameName(t.Hdr.Name, owner) {
			continue // only records at the owner itself; CNAMEs are not followed
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			return nil, 0, fmt.Errorf("query %s at %s: %w: association data %q: %v", q, addr, errBadRecord, t.Certificate, err)
		}
		recs = append(recs, tlsa.Record{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
		if ttl == 0 || t.Hdr.Ttl < ttl {
			ttl = t.Hdr.Ttl
		}
	}
	return sortedRecords(recs), ttl, nil
}

// sortedRecords returns recs sorted by presentation form, each once (a
// copy: the caller's slice is left alone).
func sortedRecords(recs []tlsa.Record) []tlsa.Record {
	if len(recs) == 0 {
		return nil
	}
	out := slices.Clone(recs)
	slices.SortFunc(out, func(a, b tlsa.Record) int { return cmp.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, tlsa.Record.Equal)
}

// sameAddr reports whether a and b are the same "ip:port" (netip forms
// compared, IPv4-mapped IPv6 unmapped); names that do not parse never match.
func sameAddr(a, b string) bool {
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return x.Addr().Unmap() == y.Addr().Unmap() && x.Port() == y.Port()
}

// CaughtUp reports whether every authoritative server of zone (Servers)
// answers the zone's SOA with the primary's serial or a later one (RFC
// 1982): then each serves the version of the zone the primary served when
// asked, so one observation of the owners sees every change made before.
// It costs one SOA query per server plus Servers' own queries, whatever
// the number of owners. A server that cannot be found, asked or does not
// answer authoritatively is not caught up. The error is Servers' or the
// primary's SOA failure.
func (c *Checker) CaughtUp(ctx context.Context, zone string) (bool, error) {
	if err := c.check(); err != nil {
		return false, err
	}
	zone = canonical(zone)
	primary, err := c.askSOA(ctx, c.Primary, zone)
	if err != nil {
		return false, fmt.Errorf("read SOA of zone %q from the primary: %w", zone, err)
	}
	servers, err := c.Servers(ctx, zone)
	if err != nil {
		return false, err
	}
	behind := make([]bool, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if s.Addr == "" {
			behind[i] = true
			continue
		}
		wg.Go(func() {
			z, err := c.askSOA(ctx, s.Addr, zone)
			behind[i] = err != nil || serialBehind(z.serial, primary.serial)
		})
	}
	wg.Wait()
	return !slices.Contains(behind, true), nil
}
