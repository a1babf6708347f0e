package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/tlsa"
)

// The ownership registry: hosts that publish at one TLSA owner say, in DNS
// itself, which records each still serves, the way external-dns marks its
// records with a TXT registry (external-dns docs/registry/txt.md). Each
// claim is one TXT record at RegistryName(owner):
//
//	_danehook._25._tcp.mail.example.com. IN TXT "danehook-claim host=mx1 tlsa=3 1 1 <hex>"
//
// A host never removes a TLSA record that another host claims.

// RegistryPrefix is the label put before a TLSA owner to name its registry.
const RegistryPrefix = "_danehook."

// claimTag starts every claim's text; TXT records without it are not
// claims and are left alone.
const claimTag = "danehook-claim"

// Claim says that host serves a chain that relies on Record at Owner.
type Claim struct {
	Owner  string // absolute TLSA owner
	Host   string // the host_id of the claiming installation
	Record tlsa.Record
}

// RegistryName returns the name of owner's registry TXT RRset.
func RegistryName(owner string) string { return RegistryPrefix + dns.Fqdn(strings.ToLower(owner)) }

// Text returns the claim's TXT string.
func (c Claim) Text() string {
	return fmt.Sprintf("%s host=%s tlsa=%s", claimTag, c.Host, strings.ToLower(c.Record.String()))
}

// ParseClaim parses a claim's TXT string for owner. ok is false for any
// other TXT text.
func ParseClaim(owner, text string) (c Claim, ok bool) {
	rest, found := strings.CutPrefix(text, claimTag+" host=")
	if !found {
		return Claim{}, false
	}
	host, rec, found := strings.Cut(rest, " tlsa=")
	if !found || host == "" || strings.ContainsAny(host, " \t") {
		return Claim{}, false
	}
	r, err := tlsa.Parse(rec)
	if err != nil {
		return Claim{}, false
	}
	return Claim{Owner: dns.Fqdn(strings.ToLower(owner)), Host: host, Record: r}, true
}

// Claims returns the claims at owner's registry, read by a direct TXT query
// to Server (TCP, recursion off). NXDOMAIN and NODATA give none. Errors are
// *UpdateError.
func (p *RFC2136) Claims(ctx context.Context, owner string) ([]Claim, error) {
	rrs, err := p.registryRRset(ctx, owner)
	if err != nil {
		return nil, err
	}
	return parseClaims(owner, rrs), nil
}

// registryRRset reads the TXT RRset at owner's registry name as served
// (every TXT record there, claims or not): the value a §2.4.2 prerequisite
// must repeat exactly. NXDOMAIN and NODATA give an empty, non-nil slice.
func (p *RFC2136) registryRRset(ctx context.Context, owner string) ([]dns.RR, error) {
	name := RegistryName(owner)
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeTXT)
	q.RecursionDesired = false
	r, err := p.exchange(ctx, q, "query TXT at", "", name, "TXT", &p.queries)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Rcode == dns.RcodeNameError && r.Authoritative:
		return []dns.RR{}, nil
	case r.Rcode != dns.RcodeSuccess:
		return nil, p.rcodeError(r, "query TXT at", "", name, "TXT")
	case !r.Authoritative:
		return nil, &UpdateError{Class: ErrNotAuth, Op: "query TXT at", Server: p.server(), Owner: name, Type: "TXT",
			Rcode: r.Rcode, KeyName: p.keyName(), Err: errors.New("the server is not authoritative for the registry name")}
	}
	out := []dns.RR{}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.EqualFold(t.Hdr.Name, name) {
			out = append(out, t)
		}
	}
	return out, nil
}

// parseClaims returns the claims among the TXT records rrs at owner's
// registry, sorted by text.
func parseClaims(owner string, rrs []dns.RR) []Claim {
	var out []Claim
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			// One character string as danehook writes it, or (a provider
			// that stored the text unquoted, as zone-file text) one
			// string per word: joined with spaces again.
			c, ok := ParseClaim(owner, strings.Join(t.Txt, ""))
			if !ok {
				c, ok = ParseClaim(owner, strings.Join(t.Txt, " "))
			}
			if ok {
				out = append(out, c)
			}
		}
	}
	sortClaims(out)
	return out
}

func sortClaims(cs []Claim) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Text() < cs[j].Text() })
}

// Removals that honour the registry, and why they are safe against a host
// that claims a record at the same time (decisions R1–R4; the race: host A
// reads "nobody else claims R", host B claims R and relies on it, A's
// removal of R lands after B's claim):
//
//  R1. A removal goes only if no other host claims the record in the
//      registry as read right before the UPDATE, and the UPDATE carries
//      that read as a prerequisite (RFC 2136 §2.4.2 "RRset exists (value
//      dependent)": the server compares the whole TXT RRset, §3.2.3; when
//      the registry was empty, §2.4.3 "RRset does not exist", §3.2.2).
//      RFC 2136 cannot say "no TXT record with this value exists" (§2.4.3
//      is per RRset, not per value), so the whole RRset is the condition:
//      any change there since the read refuses the message (NXRRSET or
//      YXRRSET), and nothing in it changes (§3.4, §3.7).
//  R2. On NXRRSET or YXRRSET the registry is read again: a removal some
//      other host claims now is dropped and returned as a Conflict, the
//      rest is sent again with the new read (a benign change — another
//      host claiming its next key — costs one round trip). After
//      prerequisiteAttempts sends in a row the removals of that message are
//      dropped as Conflicts too (the next run decides again); additions in
//      it still go. A Conflict is no error: nothing was lost, the record
//      stays and stays owned.
//  R3. Independent of Prerequisites: that setting guards the TLSA records
//      a removal keeps (P2, P3); the registry guard is on whenever the
//      caller names its host (ApplyClaimed), because without it two hosts
//      can both be right when they decide and wrong together.
//  R4. The other half is the claiming host's: its claim must be in the
//      registry before it relies on the record (the engine writes claims
//      first and reads the owner again after, pkg/deploy), so either the
//      remover's read sees the claim, or the removal lands before the
//      claim and the claimer's read after its claim sees the record gone.

// Conflict is a removal that ApplyClaimed did not send: another host claims
// the record in the ownership registry (Hosts), or the registry kept
// changing under the UPDATE (Hosts empty). Reason says which, in words for
// the log. The record stays served; the next run decides again.
type Conflict struct {
	Change Change
	Hosts  []string
	Reason string
}

// String returns "<change>: <reason>".
func (c Conflict) String() string { return c.Change.String() + ": " + c.Reason }

// registryGuard is ApplyClaimed's option: the host whose own claims do not
// hold back its removals.
type registryGuard struct{ host string }

// othersClaiming returns, sorted, the hosts other than me whose claims in
// claims name rec.
func othersClaiming(claims []Claim, me string, rec tlsa.Record) []string {
	var out []string
	for _, c := range claims {
		if c.Host != me && c.Record.Equal(rec) && !slices.Contains(out, c.Host) {
			out = append(out, c.Host)
		}
	}
	sort.Strings(out)
	return out
}

// ApplyClaimed is Apply with every removal conditional on the ownership
// registry (decisions R1–R4 above): a removal is sent only when no host
// other than host claims the record in the registry read right before the
// UPDATE, and the server applies it only if the registry is still exactly
// that read. Removals not sent are returned as Conflicts (not an error);
// additions are sent as by Apply. Errors are Apply's; the conflicts found
// before an error are returned with it.
func (p *RFC2136) ApplyClaimed(ctx context.Context, host string, changes []Change) ([]Conflict, error) {
	return p.apply(ctx, changes, &registryGuard{host: host})
}

// readRegistries reads, up to readWorkers at a time, the registry RRset of
// every owner with a removal in units, and drops from b.units[from:] the
// removals another host claims (R1, R2). changed reports whether any
// registry differs from the previous read.
func (p *RFC2136) readRegistries(ctx context.Context, b *zoneBatch, from int, units []unit) (changed bool, err error) {
	if b.reg == nil {
		return false, nil
	}
	var owners []string
	for _, u := range units {
		if u.remove && !slices.Contains(owners, u.owner) {
			owners = append(owners, u.owner)
		}
	}
	rrsets := make([][]dns.RR, len(owners))
	errs := make([]error, len(owners))
	forEach(len(owners), readWorkers, func(i int) {
		rrsets[i], errs[i] = p.registryRRset(ctx, b.owners[owners[i]])
	})
	if b.regs == nil {
		b.regs = map[string][]dns.RR{}
	}
	for i, o := range owners {
		if errs[i] != nil {
			return false, errs[i]
		}
		if old, ok := b.regs[o]; ok && !sameTXT(old, rrsets[i]) {
			changed = true
		}
		b.regs[o] = rrsets[i]
	}
	b.dropClaimed(from)
	return changed, nil
}

// sameTXT reports whether two TXT RRsets hold the same strings.
func sameTXT(a, b []dns.RR) bool {
	key := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			if t, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(t.Txt, "\x00"))
			}
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// dropClaimed removes from the removal units of b.units[from:] every change
// another host claims in the registry as last read, as a Conflict, and the
// units left empty.
func (b *zoneBatch) dropClaimed(from int) {
	kept := b.units[:from]
	for _, u := range b.units[from:] {
		rrs, read := b.regs[u.owner]
		if !u.remove || !read {
			kept = append(kept, u)
			continue
		}
		claims := parseClaims(b.owners[u.owner], rrs)
		var cs []Change
		for _, c := range u.changes {
			if hosts := othersClaiming(claims, b.reg.host, c.Record); len(hosts) > 0 {
				b.conflicts = append(b.conflicts, Conflict{Change: c, Hosts: hosts,
					Reason: fmt.Sprintf("host %s claimed it in the ownership registry %s since this run decided (read right before the UPDATE): kept, decided again next run",
						strings.Join(hosts, ", "), RegistryName(u.owner))})
				continue
			}
			cs = append(cs, c)
		}
		if len(cs) == len(u.changes) {
			kept = append(kept, u)
		} else if len(cs) > 0 {
			kept = append(kept, newUnit(u.owner, cs, true, u.guarded))
		}
	}
	b.units = kept
}

// giveUp drops the removal units of b.units[from:to] as Conflicts after
// attempts sends refused because the registry kept changing (R2).
func (b *zoneBatch) giveUp(from, to, attempts int) {
	kept := append([]unit(nil), b.units[:from]...)
	for j, u := range b.units[from:] {
		if from+j >= to || !u.remove {
			kept = append(kept, u)
			continue
		}
		for _, c := range u.changes {
			b.conflicts = append(b.conflicts, Conflict{Change: c,
				Reason: fmt.Sprintf("the ownership registry %s or the TLSA RRset changed between reading it and the UPDATE %d times in a row (another host is busy there): kept, decided again next run",
					RegistryName(u.owner), attempts)})
		}
	}
	b.units = kept
}

// registryPrerequisite adds to m the condition on owner's registry (R1):
// the TXT RRset exactly as read (§2.4.2), or none at all (§2.4.3) when it
// was empty or not read yet (a size estimate).
func (b *zoneBatch) registryPrerequisite(m *dns.Msg, owner string) {
	name := RegistryName(b.owners[owner])
	rrs := b.regs[owner]
	if len(rrs) == 0 {
		m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
		return
	}
	cp := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		cp[i] = dns.Copy(rr)
		cp[i].Header().Name = name
	}
	m.Used(cp)
}

// ApplyClaims adds and removes claims with TSIG-signed UPDATEs, one per
// zone (the zone of each claim's owner, FindZone) unless a zone's claims do
// not fit in one DNS message (65535 bytes with TSIG, RFC 1035 §4.2.2): then
// as many messages as hold them, additions first. Each claim is one TXT
// record of ttl seconds at RegistryName(owner); removing deletes only that
// exact record (RFC 2136 §2.5.4). Nothing is sent when both are empty. Up
// to zoneWorkers zones are updated at once (decision S2); a zone's failure
// stops no other, and the error joins every failing zone's *UpdateError.
func (p *RFC2136) ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error {
	type zoneClaims struct {
		rrs    []dns.RR
		insert []bool
	}
	byZone := map[string]*zoneClaims{}
	var zones []string
	put := func(c Claim, insert bool) error {
		z, err := p.FindZone(ctx, c.Owner)
		if err != nil {
			return err
		}
		zc := byZone[z]
		if zc == nil {
			zc = &zoneClaims{}
			byZone[z] = zc
			zones = append(zones, z)
		}
		zc.rrs = append(zc.rrs, &dns.TXT{Hdr: dns.RR_Header{Name: RegistryName(c.Owner), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{c.Text()}})
		zc.insert = append(zc.insert, insert)
		return nil
	}
	for _, c := range add {
		if err := put(c, true); err != nil {
			return err
		}
	}
	for _, c := range remove {
		if err := put(c, false); err != nil {
			return err
		}
	}
	sort.Strings(zones)
	// Sizes are summed uncompressed (dns.Len), an upper bound of the
	// packed message.
	limit := dns.MaxMsgSize - p.tsigLen()
	errs := make([]error, len(zones))
	forEach(len(zones), zoneWorkers, func(i int) {
		z, zc := zones[i], byZone[zones[i]]
		var m *dns.Msg
		size := 0
		send := func() error {
			r, err := p.exchange(ctx, m, "update", z, "", "TXT", &p.updates)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess {
				return p.rcodeError(r, "update", z, "", "TXT")
			}
			m = nil
			return nil
		}
		for j, rr := range zc.rrs {
			n := dns.Len(rr)
			if m != nil && size+n > limit {
				if errs[i] = send(); errs[i] != nil {
					return
				}
			}
			if m == nil {
				m = new(dns.Msg)
				m.SetUpdate(z)
				size = 12 + len(z) + 2 + 4
			}
			if zc.insert[j] {
				m.Insert([]dns.RR{rr})
			} else {
				m.Remove([]dns.RR{rr})
			}
			size += n
		}
		if m != nil {
			errs[i] = send()
		}
	})
	return errors.Join(errs...)
}
