package propagate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// ErrUnsigned is wrapped by DNSSEC's error when Checker.RequireDNSSEC is set
// and the zone is not signed: sending MTAs ignore TLSA records in unsigned
// zones (RFC 7672 §2.2), so publishing them protects nothing.
var ErrUnsigned = errors.New("zone is not DNSSEC-signed")

// ErrInsecure is wrapped by DNSSEC's error when Checker.RequireDNSSEC is set
// and the zone is signed but known not to validate: the configured
// validating resolver does not set the AD bit, or the parent has no DS and
// the resolver did not validate the zone either (a resolver that validates
// it without a DS has a trust anchor for the zone itself: that passes, with
// a Warning).
var ErrInsecure = errors.New("zone is signed but does not validate")

// WarningUnsigned is DNSSECStatus.Warning for an unsigned zone.
const WarningUnsigned = "senders ignore TLSA in unsigned zones (RFC 7672 §2.2)"

// State is the answer to a check that may not have been possible.
type State string

// The values of a State.
const (
	Yes     State = "yes"
	No      State = "no"
	Unknown State = "unknown" // not checked (no resolver) or no usable answer
)

// DNSSECStatus tells whether a zone is signed and validates.
type DNSSECStatus struct {
	// Zone is the zone name, absolute and lower case.
	Zone string `json:"zone"`
	// Signed is true when the primary serves a DNSKEY RRset at the apex and
	// an RRSIG over the SOA (RFC 4035 §2).
	Signed bool `json:"signed"`
	// DNSKEYs is the number of DNSKEY records at the apex.
	DNSKEYs int `json:"dnskeys"`
	// SOASigned is true when the SOA answer carries an RRSIG over it.
	SOASigned bool `json:"soa_signed"`
	// DS says whether the parent publishes a DS RRset for the zone, asked
	// at Checker.Resolver (RFC 4035 §5); Unknown without a resolver.
	DS State `json:"ds"`
	// Validated says whether Checker.Resolver sets the AD bit on the zone's
	// SOA (RFC 4035 §3.2.3, RFC 6840 §5.7), which a validating resolver does
	// only when the chain of trust holds; Unknown without a resolver.
	Validated State `json:"validated"`
	// Explanation says in plain words what was found.
	Explanation string `json:"explanation"`
	// Warning is non-empty when TLSA records in the zone would be ignored
	// by sending MTAs: WarningUnsigned, or a missing DS or AD bit.
	Warning string `json:"warning,omitempty"`
}

// DNSSEC tells whether zone is DNSSEC-signed at the primary (DNSKEY at the
// apex, RRSIG over the SOA), whether the parent has a DS for it and whether
// a validating resolver validates it (the last two only when
// Checker.Resolver is set). The error is non-nil when the primary cannot be
// asked or does not answer authoritatively (ErrNotAuthoritative), and, with
// Checker.RequireDNSSEC, when the zone is unsigned (ErrUnsigned) or known
// not to validate (ErrInsecure); the status is returned in all but the
// first case.
func (c *Checker) DNSSEC(ctx context.Context, zone string) (DNSSECStatus, error) {
	zone = canonical(zone)
	st := DNSSECStatus{Zone: zone, DS: Unknown, Validated: Unknown}
	if err := c.check(); err != nil {
		return st, err
	}
	for _, qtype := range []uint16{dns.TypeDNSKEY, dns.TypeSOA} {
		q := query{name: zone, qtype: qtype, dnssec: true}
		r, err := c.exchange(ctx, c.Primary, q)
		if err == nil {
			err = authoritative(r, c.Primary, q, false)
		}
		if err != nil {
			return st, fmt.Errorf("check DNSSEC of zone %q: %w", zone, err)
		}
		for _, rr := range r.Answer {
			if !sameName(rr.Header().Name, zone) {
				continue
			}
			switch v := rr.(type) {
			case *dns.DNSKEY:
				st.DNSKEYs++
			case *dns.RRSIG:
				if v.TypeCovered == dns.TypeSOA {
					st.SOASigned = true
				}
			}
		}
	}
	st.Signed = st.DNSKEYs > 0 && st.SOASigned

	var why []string
	switch {
	case st.Signed:
		why = append(why, fmt.Sprintf("zone %s is signed: the primary serves %d DNSKEY records and an RRSIG over the SOA", zone, st.DNSKEYs))
	case st.DNSKEYs > 0:
		why = append(why, fmt.Sprintf("zone %s is not signed: the primary serves %d DNSKEY records but no RRSIG over the SOA", zone, st.DNSKEYs))
	default:
		why = append(why, fmt.Sprintf("zone %s is not signed: the primary serves no DNSKEY at the apex", zone))
	}
	if st.Signed && c.Resolver != "" {
		st.DS, st.Validated = c.askResolver(ctx, zone, &why)
	} else if st.Signed {
		why = append(why, "DS and validation not checked (no resolver configured)")
	}
	st.Explanation = strings.Join(why, "; ")

	var sentinel error
	switch {
	case !st.Signed:
		st.Warning, sentinel = WarningUnsigned, ErrUnsigned
	case st.Validated == No:
		st.Warning = "the resolver " + c.Resolver + " does not validate " + zone + " (no AD bit): senders behind such a resolver ignore its TLSA records (RFC 7672 §2.2)"
		sentinel = ErrInsecure
	case st.DS == No:
		st.Warning = "the parent zone has no DS for " + zone + ": only resolvers with a trust anchor for the zone itself validate it; other senders treat its TLSA records as insecure and ignore them (RFC 7672 §2.2)"
		if st.Validated != Yes {
			sentinel = ErrInsecure
		}
	}
	if c.RequireDNSSEC && sentinel != nil {
		return st, fmt.Errorf("check DNSSEC of zone %q: %w: %s", zone, sentinel, st.Warning)
	}
	return st, nil
}

// askResolver asks the resolver for the zone's DS and for its SOA with the
// AD bit, appending what it learnt to why.
func (c *Checker) askResolver(ctx context.Context, zone string, why *[]string) (ds, validated State) {
	ds, validated = Unknown, Unknown
	q := query{name: zone, qtype: dns.TypeDS, recursive: true, dnssec: true}
	r, err := c.exchange(ctx, c.Resolver, q)
	switch {
	case err != nil:
		*why = append(*why, "DS unknown: "+err.Error())
	case r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError:
		ds = No
		for _, rr := range r.Answer {
			if _, ok := rr.(*dns.DS); ok && sameName(rr.Header().Name, zone) {
				ds = Yes
			}
		}
		if ds == Yes {
			*why = append(*why, "the parent has a DS for it")
		} else {
			*why = append(*why, "the parent has no DS for it (resolver "+c.Resolver+")")
		}
	default:
		*why = append(*why, fmt.Sprintf("DS unknown: resolver %s answered %s", c.Resolver, dns.RcodeToString[r.Rcode]))
	}

	q = query{name: zone, qtype: dns.TypeSOA, recursive: true, dnssec: true}
	r, err = c.exchange(ctx, c.Resolver, q)
	switch {
	case err != nil:
		*why = append(*why, "validation unknown: "+err.Error())
	case r.Rcode != dns.RcodeSuccess:
		*why = append(*why, fmt.Sprintf("validation unknown: resolver %s answered %s for the SOA", c.Resolver, dns.RcodeToString[r.Rcode]))
	case r.AuthenticatedData:
		validated = Yes
		*why = append(*why, "resolver "+c.Resolver+" validates it (AD bit)")
	default:
		validated = No
		*why = append(*why, "resolver "+c.Resolver+" does not set the AD bit: the zone does not validate from its trust anchors, or it does not validate at all")
	}
	return ds, validated
}
