package dnsupdate

import (
	"context"
	"errors"
	"fmt"
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
		return nil, nil
	case r.Rcode != dns.RcodeSuccess:
		return nil, p.rcodeError(r, "query TXT at", "", name, "TXT")
	case !r.Authoritative:
		return nil, &UpdateError{Class: ErrNotAuth, Op: "query TXT at", Server: p.server(), Owner: name, Type: "TXT",
			Rcode: r.Rcode, KeyName: p.keyName(), Err: errors.New("the server is not authoritative for the registry name")}
	}
	var out []Claim
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.EqualFold(t.Hdr.Name, name) {
			if c, ok := ParseClaim(owner, strings.Join(t.Txt, "")); ok {
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Text() < out[j].Text() })
	return out, nil
}

// ApplyClaims adds and removes claims with one TSIG-signed UPDATE per zone
// (the zone of each claim's owner, FindZone), each claim one TXT record of
// ttl seconds at RegistryName(owner); removing deletes only that exact
// record (RFC 2136 §2.5.4). Nothing is sent when both are empty. Errors are
// *UpdateError; zones before a failing one stay changed.
func (p *RFC2136) ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error {
	byZone := map[string]*dns.Msg{}
	var zones []string
	put := func(c Claim, insert bool) error {
		z, err := p.FindZone(ctx, c.Owner)
		if err != nil {
			return err
		}
		m := byZone[z]
		if m == nil {
			m = new(dns.Msg)
			m.SetUpdate(z)
			byZone[z] = m
			zones = append(zones, z)
		}
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: RegistryName(c.Owner), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{c.Text()}}
		if insert {
			m.Insert([]dns.RR{rr})
		} else {
			m.Remove([]dns.RR{rr})
		}
		return nil
	}
	for _, c := range remove {
		if err := put(c, false); err != nil {
			return err
		}
	}
	for _, c := range add {
		if err := put(c, true); err != nil {
			return err
		}
	}
	sort.Strings(zones)
	for _, z := range zones {
		r, err := p.exchange(ctx, byZone[z], "update", z, "", "TXT", &p.updates)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess {
			return p.rcodeError(r, "update", z, "", "TXT")
		}
	}
	return nil
}
