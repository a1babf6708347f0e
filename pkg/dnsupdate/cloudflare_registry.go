package dnsupdate

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The ownership registry (registry.go) at Cloudflare: each claim is one TXT
// record at RegistryName(owner) in the owner's zone, created with POST
// /zones/{id}/dns_records {"type": "TXT", "name", "ttl", "content"} and
// deleted by id. Cloudflare's API reference asks for TXT content as quoted
// character strings (RFC 1035 §3.3.14; "The content must consist of quoted
// "character strings" …, each with a length of up to 255 bytes",
// cloudflare/cloudflare-typescript#1777, from the OpenAPI schema), so claims
// are sent quoted and read back quoted or not.
//
// The API has no prerequisite or compare-and-swap, so a removal cannot be
// made conditional on the registry in the same request (RFC 2136's R1).
// ApplyClaimed narrows the race instead: claims are written before the
// records (the engine's claim first, then rely) and read again after the
// additions, right before the first removal at each owner; a host that
// claims a record between that read and the DELETE (a few hundred
// milliseconds) is not protected. README, "CNAME owners and hosts that
// share an owner", says so.

var _ interface {
	Claims(ctx context.Context, owner string) ([]Claim, error)
	ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error
	ApplyClaimed(ctx context.Context, host string, changes []Change) ([]Conflict, error)
} = (*Cloudflare)(nil)

// cfClaim is one claim TXT record with its API id.
type cfClaim struct {
	ID    string
	Claim Claim
}

// cfTXTText returns the text of a TXT record's content as the API returns
// it: one or more quoted character strings, joined, or the content as is
// when it is not quoted (records created before Cloudflare asked for
// quotes).
func cfTXTText(content string) string {
	s := strings.TrimSpace(content)
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, `"`) {
			b.WriteString(s)
			break
		}
		s = s[1:]
		for len(s) > 0 && s[0] != '"' {
			if s[0] == '\\' && len(s) > 1 {
				s = s[1:]
			}
			b.WriteByte(s[0])
			s = s[1:]
		}
		s = strings.TrimPrefix(s, `"`)
	}
	return b.String()
}

// cfQuote returns text as one quoted character string (claims are shorter
// than 255 bytes and hold no quote or backslash).
func cfQuote(text string) string { return strconv.Quote(text) }

func (c *Cloudflare) listClaims(ctx context.Context, owner string) (cfZone, []cfClaim, error) {
	z, err := c.findZone(ctx, owner)
	if err != nil {
		return cfZone{}, nil, err
	}
	recs, err := c.listRecords(ctx, z, RegistryName(owner), "TXT")
	if err != nil {
		return cfZone{}, nil, err
	}
	var out []cfClaim
	for _, r := range recs {
		if cl, ok := ParseClaim(owner, cfTXTText(r.Content)); ok {
			out = append(out, cfClaim{ID: r.ID, Claim: cl})
		}
	}
	return z, out, nil
}

// Claims returns the claims at owner's registry (GET
// /zones/{id}/dns_records?type=TXT&name=<registry name>), sorted by text;
// none when there are none. Errors are *CloudflareError.
func (c *Cloudflare) Claims(ctx context.Context, owner string) ([]Claim, error) {
	_, cs, err := c.listClaims(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]Claim, 0, len(cs))
	for _, x := range cs {
		out = append(out, x.Claim)
	}
	sortClaims(out)
	return out, nil
}

// ApplyClaims adds and removes claims, each one TXT record of ttl seconds
// (0: automatic) at RegistryName(owner): it lists each owner's registry
// once, POSTs the claims not there yet and DELETEs by id the records of the
// claims to remove (a claim already there or already gone sends nothing).
// Adds go before removes. Errors are *CloudflareError; changes before the
// failing one stay made.
func (c *Cloudflare) ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error {
	type reg struct {
		zone   cfZone
		claims []cfClaim
	}
	regs := map[string]*reg{}
	read := func(owner string) (*reg, error) {
		k := cfName(owner)
		if r := regs[k]; r != nil {
			return r, nil
		}
		z, cs, err := c.listClaims(ctx, owner)
		if err != nil {
			return nil, err
		}
		regs[k] = &reg{zone: z, claims: cs}
		return regs[k], nil
	}
	for _, cl := range add {
		r, err := read(cl.Owner)
		if err != nil {
			return err
		}
		if containsClaim(r.claims, cl) {
			continue
		}
		body := map[string]any{"type": "TXT", "name": cfName(RegistryName(cl.Owner)), "ttl": cfClaimTTL(ttl), "content": cfQuote(cl.Text())}
		_, err = c.do(ctx, cfRequest{op: "add claim", method: http.MethodPost, path: "/zones/" + url.PathEscape(r.zone.ID) + "/dns_records",
			body: body, zone: cfAbs(r.zone.Name), owner: cfAbs(RegistryName(cl.Owner))}, nil)
		var ce *CloudflareError
		if err != nil && !(errors.As(err, &ce) && ce.Code == cfCodeIdenticalRecord) {
			return err
		}
	}
	for _, cl := range remove {
		r, err := read(cl.Owner)
		if err != nil {
			return err
		}
		for _, x := range r.claims {
			if x.Claim.Host != cl.Host || !x.Claim.Record.Equal(cl.Record) {
				continue
			}
			_, err := c.do(ctx, cfRequest{op: "delete claim", method: http.MethodDelete,
				path: "/zones/" + url.PathEscape(r.zone.ID) + "/dns_records/" + url.PathEscape(x.ID), zone: cfAbs(r.zone.Name), owner: cfAbs(RegistryName(cl.Owner))}, nil)
			var ce *CloudflareError
			if err != nil && !(errors.As(err, &ce) && ce.Code == cfCodeRecordNotFound) {
				return err
			}
		}
	}
	return nil
}

// cfClaimTTL is the TTL a claim is created with: ttl within the API's
// bounds (30–86400 s), else 1 (automatic). Nothing caches claims for long:
// they are read by the API.
func cfClaimTTL(ttl uint32) int {
	if ttl < 30 || ttl > 86400 {
		return 1
	}
	return int(ttl)
}

func containsClaim(cs []cfClaim, cl Claim) bool {
	for _, x := range cs {
		if x.Claim.Host == cl.Host && x.Claim.Record.Equal(cl.Record) {
			return true
		}
	}
	return false
}

// ApplyClaimed is Apply with every removal checked against the ownership
// registry: after the additions, right before the first removal at each
// owner, that owner's claims are read again, and a removal that a host
// other than host claims is not sent but returned as a Conflict (not an
// error). Cloudflare has no prerequisites, so a claim written between that
// read and the DELETE is not seen (see the top of this file). Errors are
// Apply's; conflicts found before an error are returned with it.
func (c *Cloudflare) ApplyClaimed(ctx context.Context, host string, changes []Change) ([]Conflict, error) {
	return c.apply(ctx, changes, &registryGuard{host: host})
}
