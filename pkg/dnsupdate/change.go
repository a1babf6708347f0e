// Package dnsupdate reads and changes TLSA RRsets at DNS providers: RFC 2136
// dynamic updates with TSIG (RFC 2136, RFC 8945), the Cloudflare API, and
// any libdns provider through Libdns (libdns.go; the providers themselves
// are in pkg/libdnsprov). It knows nothing of MTAs or ACME clients.
//
// Both providers, RFC2136 and Cloudflare, offer the same three methods:
// FindZone, Records (a direct read of one owner's TLSA RRset, never a cached
// or truncated answer) and Apply (a Plan's Add and Remove changes). Apply's
// contract, common to both: it deletes only the exact records a plan
// removes, so records of other writers survive; it is idempotent, so
// sending a plan again after any failure is safe; when it fails, what it
// leaves behind is provider-specific and documented on each Apply (RFC 2136:
// each UPDATE message is atomic, a zone's additions go before its removals,
// zones before the failing one stay changed;
// Cloudflare and Libdns: adds before removes, a *CloudflareApplyError or
// *LibdnsApplyError lists what was applied); after a lost answer, read again. Only RFC2136 can guard removals
// against concurrent writers (RFC2136.Prerequisites, driven by a plan's Keep
// entries). All three keep the ownership registry of hosts that share an
// owner (registry.go: Claims, ApplyClaims, ApplyClaimed); only RFC2136 makes
// a removal conditional on it inside the UPDATE (decisions R1–R4), the
// others read the claims again right before removing. All are safe for
// concurrent use.
package dnsupdate

import (
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Op is what a Change does to one record.
type Op int

// The operations of a plan, printed as "+", "-" and "=".
const (
	Keep   Op = iota // the record is served and stays ("=")
	Add              // the record is added ("+")
	Remove           // the record is removed ("-")
)

// String returns "+", "-" or "=".
func (o Op) String() string {
	switch o {
	case Add:
		return "+"
	case Remove:
		return "-"
	default:
		return "="
	}
}

// RR is one TLSA resource record as served: an absolute owner name such as
// "_25._tcp.mail.example.com.", its TTL in seconds and its RDATA.
type RR struct {
	Owner  string
	TTL    uint32
	Record tlsa.Record
}

// String returns the zone-file line "<owner> <ttl> IN TLSA <u> <s> <m> <hex>".
func (r RR) String() string {
	return string(r.AppendTo(make([]byte, 0, len(r.Owner)+30+2*len(r.Record.Data))))
}

// AppendTo appends r's zone-file line (String) to b and returns the
// extended slice.
func (r RR) AppendTo(b []byte) []byte {
	b = append(b, r.Owner...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.TTL), 10)
	b = append(b, " IN TLSA "...)
	return r.Record.AppendTo(b)
}

// Change is one step of a plan: add, remove or keep one record.
type Change struct {
	Op Op
	RR
}

// String returns "+ <zone-file line>", "- …" or "= …".
func (c Change) String() string {
	return string(c.AppendTo(make([]byte, 0, len(c.Owner)+32+2*len(c.Record.Data))))
}

// AppendTo appends c's line (String) to b and returns the extended slice.
func (c Change) AppendTo(b []byte) []byte {
	b = append(b, c.Op.String()...)
	b = append(b, ' ')
	return c.RR.AppendTo(b)
}

// Plan is the ordered list of changes at one or more owners. Providers send
// only Add and Remove. Keep entries change nothing: they are printed, and at
// an owner where the plan also removes a record they name the records the
// removal relies on (RFC2136.Prerequisites refuses the removal when one of
// them is gone), so callers should pass them to Apply.
type Plan []Change

// Empty reports whether the plan adds or removes nothing.
func (p Plan) Empty() bool {
	for _, c := range p {
		if c.Op != Keep {
			return false
		}
	}
	return true
}

// String returns one change per line, in plan order.
func (p Plan) String() string {
	var b strings.Builder
	for _, c := range p {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Diff computes the plan that turns the records currently served at owner
// into the desired ones. current is what the provider serves now, desired what
// danehook wants, owned what danehook published earlier (from the state).
// A record is added when desired and not served; removed only when it is
// served, owned and no longer desired; every other served record is kept, so
// records published by others survive. New records get ttl (seconds).
func Diff(owner string, ttl uint32, current []RR, desired, owned []tlsa.Record) Plan {
	var p Plan
	has := func(set []tlsa.Record, r tlsa.Record) bool {
		for _, s := range set {
			if s.Equal(r) {
				return true
			}
		}
		return false
	}
	var served []tlsa.Record
	for _, rr := range current {
		served = append(served, rr.Record)
		switch {
		case has(desired, rr.Record):
			p = append(p, Change{Op: Keep, RR: rr})
		case has(owned, rr.Record):
			p = append(p, Change{Op: Remove, RR: rr})
		default:
			p = append(p, Change{Op: Keep, RR: rr})
		}
	}
	for _, d := range desired {
		if !has(served, d) {
			served = append(served, d)
			p = append(p, Change{Op: Add, RR: RR{Owner: owner, TTL: ttl, Record: d}})
		}
	}
	return p
}
