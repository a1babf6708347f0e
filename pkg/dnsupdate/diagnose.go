package dnsupdate

// How the three servers operators run answer an UPDATE they do not apply,
// measured against the real servers (interop_test.go, README "DNS
// servers"), and what this client makes of it:
//
//	                         BIND 9.18              Knot 3.2                PowerDNS 4.7
//	wrong secret             NOTAUTH(BADSIG)        NOTAUTH(BADSIG)         REFUSED, unsigned
//	unknown key              NOTAUTH(BADKEY)        NOTAUTH(BADKEY)         REFUSED, unsigned
//	clock skew > fudge       NOTAUTH(BADTIME)       NOTAUTH(BADTIME)        REFUSED, unsigned
//	key not granted          REFUSED, signed        NOTAUTH(BADKEY)         REFUSED, signed
//	unsigned, not allowed    REFUSED                NOTAUTH                 REFUSED
//	zone not served          NOTAUTH, signed        NOTAUTH, unsigned       REFUSED, signed
//
// and to a signed query whose TSIG fails, BIND and Knot answer
// NOTAUTH(<TSIG error>), PowerDNS NOTAUTH without a TSIG record.
//
// The RCODE alone therefore misleads: a Knot ACL that denies the change
// reads as "unknown key", a PowerDNS with a wrong secret or a skewed clock
// as "refused by policy", an unserved zone as "refused". So:
//
//  D1. When an UPDATE fails with REFUSED, with NOTAUTH without a TSIG error,
//      or with BADKEY, the client asks the same server for the zone's SOA,
//      signed with the same key and clock (one query, only after a
//      failure), and classifies by both answers: the query fails TSIG too
//      → ErrTSIG (with the query's TSIG error when the server gives one:
//      BADTIME carries the server's clock); the server is not authoritative
//      for the zone (REFUSED, no AA) → ErrNotAuth; the server answers the
//      zone's SOA authoritatively and accepts the key → the UPDATE was
//      denied by the server's update rules → ErrRefused.
//  D2. The UPDATE's own TSIG error wins when the probe agrees (BADKEY on
//      both stays BADKEY); a probe that gets no answer leaves the UPDATE's
//      error as it was.
//  D3. NOTAUTH to a signed query without a TSIG record is a TSIG failure
//      whose kind the server does not tell (PowerDNS): ErrTSIG with
//      errUntoldTSIG, whatever the query was for.

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// errUntoldTSIG explains an ErrTSIG the server gave no TSIG error for (D3).
var errUntoldTSIG = errors.New("the server rejected the request's TSIG without saying why (no TSIG record in its answer, as PowerDNS answers an unknown key, a wrong secret or algorithm, and a clock skew beyond the 300 s fudge)")

// diagnose takes the error of a failed UPDATE and, where the answer's RCODE
// may mislead (D1), asks the server for the zone's SOA with the same key to
// return the error of the right class. Other errors are returned unchanged.
func (p *RFC2136) diagnose(ctx context.Context, err error) error {
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Op != "update" || ue.Zone == "" || ue.Rcode < 0 {
		return err
	}
	switch {
	case ue.Rcode == dns.RcodeRefused && ue.TSIGError == 0,
		ue.Rcode == dns.RcodeNotAuth && ue.TSIGError == 0 && ue.Class != ErrTSIG,
		ue.TSIGError == dns.RcodeBadKey:
	default:
		return err
	}
	q := new(dns.Msg)
	q.SetQuestion(ue.Zone, dns.TypeSOA)
	q.RecursionDesired = false
	r, perr := p.exchange(ctx, q, "update", ue.Zone, ue.Owner, ue.Type, &p.queries)
	var pe *UpdateError
	switch {
	case perr != nil && errors.As(perr, &pe) && pe.Class == ErrTSIG:
		if ue.TSIGError != 0 {
			return err // D2: the UPDATE's own TSIG error says it
		}
		// The key fails on queries too: a TSIG problem the UPDATE's answer
		// did not name (PowerDNS REFUSED). The probe's answer says more.
		e := *pe
		e.Owner, e.Type = ue.Owner, ue.Type
		if e.TSIGError == 0 {
			e.Rcode, e.Err = ue.Rcode, errUntoldTSIG
		}
		return &e
	case perr != nil:
		return err // D2: no better knowledge
	case r.Rcode != dns.RcodeSuccess || !r.Authoritative:
		if ue.Class == ErrNotAuth {
			return err
		}
		e := *ue
		e.Class, e.TSIGError = ErrNotAuth, 0
		e.Err = fmt.Errorf("the server does not serve zone %q either (its SOA query was answered %s, aa=%v)", ue.Zone, rcodeName(r.Rcode), r.Authoritative)
		return &e
	default:
		// Authoritative, and the key (if any) verified on the query: the
		// update rules denied the change.
		if ue.Class == ErrRefused {
			return err
		}
		e := *ue
		e.Class, e.Err = ErrRefused, errors.New("the update is not allowed: the server serves the zone (Knot answers an unsigned UPDATE it does not allow this way)")
		if p.Key != nil {
			e.Err = errors.New("the update is not allowed: the server serves the zone and accepts the key on queries, so its update rules deny this change (Knot answers an UPDATE its ACL denies this way)")
		}
		return &e
	}
}
