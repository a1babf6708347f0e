package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Error classes. Every error a provider returns for a server's answer or for
// an unreachable server wraps exactly one of these, so callers (the CLI maps
// them to exit codes) branch with errors.Is. They are provider-neutral.
var (
	// ErrTSIG: the server rejected the request's TSIG (RFC 8945 §5.2:
	// BADKEY, BADSIG, BADTIME) or the response's TSIG did not verify.
	ErrTSIG = errors.New("tsig authentication failed")
	// ErrRefused: the server refused the change (RCODE REFUSED; for BIND, the
	// zone's update-policy does not grant it).
	ErrRefused = errors.New("update refused")
	// ErrNotAuth: the server is not authoritative for the zone (RCODE NOTAUTH
	// without a TSIG error) or the owner is not in the zone (NOTZONE).
	ErrNotAuth = errors.New("server not authoritative")
	// ErrServer: SERVFAIL, another unexpected RCODE, a timeout or an
	// unreachable server.
	ErrServer = errors.New("server failure")
	// ErrPrerequisite: an RFC 2136 §2.4 prerequisite failed (NXRRSET,
	// YXRRSET, NXDOMAIN, YXDOMAIN): another writer removed a record the
	// plan keeps (RFC2136.Prerequisites) or kept changing the RRset. Nothing
	// in the failing UPDATE message was changed (in a zone split over several
	// messages, UpdateError.Part says which; the additions before it were
	// applied); re-run to recompute the plan.
	ErrPrerequisite = errors.New("prerequisite failed")
)

// ErrTruncated is not a class: an *UpdateError of class ErrServer wraps it
// when the server's answer had the TC bit set. RFC2136 sends every message
// over TCP, where a server has no reason to truncate (a TCP message carries
// up to 65535 bytes) and asking again cannot complete the answer, so it is
// never taken as a success (an UPDATE) or as the RRset (a read).
var ErrTruncated = errors.New("the answer is truncated (TC bit set) even over TCP")

// UpdateError describes a failed exchange with a DNS server: which message
// (Op), to which server, for which zone and owner, signed with which key (the
// name only — never the secret), and how it failed. It wraps one error class
// (ErrTSIG, ErrRefused, ErrNotAuth, ErrServer, ErrPrerequisite) and, for
// transport failures, the underlying error.
type UpdateError struct {
	Class   error  // one of the Err* classes above
	Op      string // "update", "query TLSA", "find zone"
	Server  string // "host:port"
	Zone    string // absolute zone name, "" when unknown
	Owner   string // absolute owner name, "" when the message spans several
	Type    string // RR type of the change, e.g. "TLSA"
	KeyName string // TSIG key name, "" when unsigned
	// ListedZone says Zone came from the provider's zones list (RFC2136
	// Zones), not from the server's answers.
	ListedZone bool
	// KeyAlgorithm is the TSIG algorithm, e.g. "hmac-sha256"; set with TSIG errors.
	KeyAlgorithm string

	// Rcode is the response's RCODE (dns.RcodeNotAuth …) or -1 when no
	// response arrived. TSIGError is the TSIG RR's Error field
	// (even when the class is not ErrTSIG: Knot answers an UPDATE its ACL
	// denies with BADKEY, which the client classifies ErrRefused)
	// (dns.RcodeBadSig 16, dns.RcodeBadKey 17, dns.RcodeBadTime 18), 0 if none.
	Rcode     int
	TSIGError uint16

	// LocalTime and ServerTime are set for BADTIME: our clock when the
	// request was signed (its Time Signed, which the server compared with
	// its own clock) and the server's clock from the TSIG Other Data field
	// (RFC 8945 §5.2.3). Fudge is the allowed skew in seconds.
	LocalTime, ServerTime time.Time
	Fudge                 uint16

	// Part and Parts are set when a zone's changes were split over several
	// UPDATE messages (RFC2136.Apply, decision S1): the failing message's
	// number, from 1, and how many the zone takes. The messages before Part
	// were applied. Both 0 for a zone sent in one message.
	Part, Parts int

	Err error // transport or TSIG verification error, nil otherwise
}

// Error returns one line: what failed where, the server's answer and what to
// do about it. It never contains a secret.
func (e *UpdateError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Parts > 1 {
		fmt.Fprintf(&b, " (message %d of %d; the messages before it were applied)", e.Part, e.Parts)
	}
	if e.Owner != "" {
		fmt.Fprintf(&b, " %q", e.Owner)
	}
	if e.Zone != "" {
		fmt.Fprintf(&b, " in zone %q", e.Zone)
	}
	fmt.Fprintf(&b, " at %s", e.Server)
	if e.KeyName != "" {
		fmt.Fprintf(&b, " with key %q", e.KeyName)
	}
	b.WriteString(": ")
	b.WriteString(e.detail())
	if h := e.Hint(); h != "" {
		b.WriteString(": ")
		b.WriteString(h)
	}
	return b.String()
}

// answer returns "server answered NOTAUTH(BADSIG)" and the like.
func (e *UpdateError) answer() string {
	s := "server answered " + rcodeName(e.Rcode)
	if e.TSIGError != 0 {
		s += "(" + rcodeName(int(e.TSIGError)) + ")"
	}
	return s
}

func (e *UpdateError) detail() string {
	switch {
	case e.Rcode < 0 && e.Err != nil:
		return e.Err.Error()
	case e.Class == ErrTSIG && e.TSIGError == dns.RcodeBadKey:
		s := e.answer() + ": the server does not know key " + quote(e.KeyName)
		if e.KeyAlgorithm != "" {
			s += " with algorithm " + e.KeyAlgorithm
		}
		return s
	case e.Class == ErrTSIG && e.TSIGError == dns.RcodeBadSig:
		return e.answer() + ": the signature of key " + quote(e.KeyName) + " did not verify (wrong secret or algorithm)"
	case e.Class == ErrTSIG && e.TSIGError == dns.RcodeBadTime:
		skew := int64(e.Skew() / time.Second)
		rel := "ahead of"
		if skew < 0 {
			skew, rel = -skew, "behind"
		}
		return fmt.Sprintf("%s: the clocks differ by %d s: local time %s is %s server time %s (allowed skew %d s)",
			e.answer(), skew, e.LocalTime.UTC().Format(time.RFC3339), rel, e.ServerTime.UTC().Format(time.RFC3339), e.Fudge)
	case e.Err != nil && e.Rcode >= 0:
		return e.answer() + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	case e.Class == ErrPrerequisite:
		return e.answer() + ": a record to remove is gone or the RRset changed since it was read (another writer changed it concurrently)"
	case e.Rcode == dns.RcodeNotAuth:
		return e.answer() + ": it is not authoritative for zone " + quote(e.Zone)
	case e.Rcode == dns.RcodeNotZone:
		return e.answer() + ": the owner is not in zone " + quote(e.Zone)
	case e.Rcode == dns.RcodeRefused:
		return e.answer() + ": the update is not allowed"
	default:
		return e.answer()
	}
}

// Skew returns LocalTime - ServerTime in whole seconds: positive when
// this host's clock is ahead of the server's. Zero unless TSIGError is BADTIME.
func (e *UpdateError) Skew() time.Duration {
	if e.TSIGError != dns.RcodeBadTime {
		return 0
	}
	// Whole seconds on both sides: the server's clock has 1 s resolution.
	return time.Duration(e.LocalTime.Unix()-e.ServerTime.Unix()) * time.Second
}

// Hint returns what the operator should do, or "". Error already ends with
// it; the CLI may print it on its own "hint:" line instead.
func (e *UpdateError) Hint() string {
	switch e.Class {
	case ErrTSIG:
		switch e.TSIGError {
		case dns.RcodeBadKey:
			return "check the key name and algorithm in named.conf (key " + quote(e.KeyName) + " { algorithm …; }; and the zone's update-policy) and in the danehook config (Knot: the key: section and an acl that lists the key; PowerDNS: pdnsutil list-tsig-keys)"
		case dns.RcodeBadSig:
			return "check that the secret and the algorithm match the key in named.conf (Knot: the key: section; PowerDNS: pdnsutil list-tsig-keys)"
		case dns.RcodeBadTime:
			return "fix the clock (NTP) on this host or on the server"
		}
		if errors.Is(e.Err, errUntoldTSIG) {
			return "check the key name, algorithm and secret on the server (PowerDNS: pdnsutil list-tsig-keys) and in the danehook config, and the clocks of both hosts (NTP)"
		}
		return "check the key's secret and algorithm; the answer may be forged"
	case ErrPrerequisite:
		return "nothing was changed in that zone; re-run to read the records again and recompute the plan"
	case ErrNotAuth:
		if e.ListedZone {
			return "the zone " + quote(e.Zone) + " comes from the provider's zones list: list only zones this server is the primary of, each zone a mail host is in (a zone served below a listed one too), or remove the list to let zone discovery find them"
		}
		if e.Rcode == dns.RcodeNotAuth || e.Rcode == dns.RcodeNotZone {
			return "set the provider's zone setting (zones, for several) to the zone that contains the owner and point server at that zone's primary"
		}
		return "point server at the primary of the zone that contains the owner, or set the provider's zone setting (zones, for several)"
	case ErrRefused:
		owner, typ := e.Owner, e.Type
		if owner == "" {
			owner = "<owner>"
		}
		if typ == "" {
			typ = "TLSA"
		}
		if e.KeyName == "" {
			return "sign updates with a TSIG key that the zone's update-policy grants"
		}
		zone := e.Zone
		if zone == "" {
			zone = "<zone>"
		}
		return fmt.Sprintf("grant the key in the zone's update-policy, e.g. update-policy { grant %q name %s %s; }; "+
			"(Knot: an acl with action: update and key: %s in the zone's acl list; PowerDNS: pdnsutil set-meta %s TSIG-ALLOW-DNSUPDATE %s; see the README's \"DNS servers\")",
			e.KeyName, owner, typ, strings.TrimSuffix(e.KeyName, "."), zone, e.KeyName)
	case ErrServer:
		if errors.Is(e.Err, context.Canceled) {
			return "" // the caller stopped the exchange; the server is not at fault
		}
		if e.Rcode < 0 {
			return "check that the server is running and reachable at that address and port"
		}
		return "see the server's log"
	}
	return ""
}

// Unwrap returns the error class and, when set, the underlying error.
func (e *UpdateError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Class, e.Err}
	}
	return []error{e.Class}
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// classify maps a response RCODE and TSIG error to an error class; nil for
// NOERROR without a TSIG error. RFC 2136 §2.2 lists the update RCODEs,
// RFC 8945 §5.2 the TSIG errors (sent with RCODE NOTAUTH).
func classify(rcode int, tsigErr uint16) error {
	if tsigErr != 0 {
		return ErrTSIG
	}
	switch rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeRefused:
		return ErrRefused
	case dns.RcodeNotAuth, dns.RcodeNotZone:
		return ErrNotAuth
	case dns.RcodeNXRrset, dns.RcodeYXRrset, dns.RcodeYXDomain, dns.RcodeNameError:
		return ErrPrerequisite
	case dns.RcodeBadSig, dns.RcodeBadKey, dns.RcodeBadTime:
		return ErrTSIG
	default:
		return ErrServer
	}
}
