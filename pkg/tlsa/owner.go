package tlsa

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits of a host name in presentation form (RFC 1035 §2.3.4, RFC 2181 §11):
// a label is at most 63 bytes; the whole name, without the trailing dot, at
// most 253.
const (
	maxLabel = 63
	maxName  = 253
)

// ErrOwner is wrapped by every error of Owner, ParseOwner and CheckHost, so
// callers can tell a bad name from other failures.
var ErrOwner = errors.New("invalid TLSA owner")

// Owner returns the TLSA owner name "_<port>._tcp.<host>." for a server at
// host listening on TCP port (RFC 6698 §3, RFC 7672 §2.2), always absolute
// and in lower case. host is a host name such as "mail.example.com", with or
// without one trailing dot; IDNs must be given as A-labels ("xn--…").
//
// The returned error wraps ErrOwner when port is 0 or host is not a valid
// host name: empty, "." alone, empty labels (".." anywhere, including a
// trailing ".."), a label longer than 63 bytes or a name longer than 253,
// characters other than letters, digits and '-' (or a label that starts or
// ends with '-'), an IPv4 or IPv6 address, an all-numeric top-level label, or
// a name that already is a TLSA owner ("_25._tcp.mail.example.com").
func Owner(port uint16, host string) (string, error) {
	if port == 0 {
		return "", fmt.Errorf("tlsa: owner for %q: port 0: %w", host, ErrOwner)
	}
	h, err := CheckHost(host)
	if err != nil {
		return "", err
	}
	return "_" + strconv.Itoa(int(port)) + "._tcp." + h + ".", nil
}

// CheckHost validates host as Owner does and returns it in lower case without
// the trailing dot ("mail.example.com"). Errors wrap ErrOwner.
func CheckHost(host string) (string, error) {
	h, why := checkHost(host)
	if why != "" {
		return "", fmt.Errorf("tlsa: host %q: %s: %w", host, why, ErrOwner)
	}
	return h, nil
}

// checkHost returns host in canonical form, or a reason why it is not a valid
// host name.
func checkHost(host string) (string, string) {
	if host == "" {
		return "", "empty name"
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.Trim(host, "[]"), ".")); err == nil {
		return "", "is an IP address (" + a.String() + "); TLSA records are published for host names (the MX target)"
	}
	h := strings.ToLower(host)
	if strings.HasSuffix(h, "..") {
		return "", "trailing double dot"
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", "the root name has no labels"
	}
	if len(h) > maxName {
		return "", fmt.Sprintf("name is %d bytes, longer than %d", len(h), maxName)
	}
	labels := strings.Split(h, ".")
	if len(labels) >= 2 && isPortLabel(labels[0]) && isProtoLabel(labels[1]) {
		return "", "already is a TLSA owner name; give the host name alone (without \"" + labels[0] + "." + labels[1] + ".\")"
	}
	for i, l := range labels {
		switch {
		case l == "":
			return "", fmt.Sprintf("empty label at position %d", i+1)
		case len(l) > maxLabel:
			return "", fmt.Sprintf("label %q is %d bytes, longer than %d", l, len(l), maxLabel)
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				if c >= 0x80 {
					return "", "non-ASCII character; give an internationalised name as its A-label (xn--…)"
				}
				return "", fmt.Sprintf("invalid character %q in label %q (want letters, digits and '-')", rune(c), l)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Sprintf("label %q starts or ends with '-'", l)
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return "", "all-numeric top-level label; looks like an IP address"
	}
	return h, ""
}

// ParseOwner splits a TLSA owner name "_<port>._tcp.<host>[.]" into the port
// and the host (lower case, without trailing dot), so that Owner(ParseOwner(o))
// returns the canonical form of o. Only the "_tcp" protocol label is
// accepted, as DANE for SMTP uses (RFC 7672 §2.2). Errors wrap ErrOwner.
func ParseOwner(owner string) (port uint16, host string, err error) {
	bad := func(why string) (uint16, string, error) {
		return 0, "", fmt.Errorf("tlsa: owner %q: %s: %w", owner, why, ErrOwner)
	}
	o := strings.ToLower(owner)
	pl, rest, ok := strings.Cut(o, ".")
	if !ok || !isPortLabel(pl) {
		return bad("want \"_<port>._tcp.<host>.\"")
	}
	proto, rest, ok := strings.Cut(rest, ".")
	if !ok || proto != "_tcp" {
		return bad("want \"_tcp\" as the second label")
	}
	n, err := strconv.ParseUint(pl[1:], 10, 16)
	if err != nil || n == 0 || pl[1] == '0' {
		return bad(fmt.Sprintf("port %q not in 1–65535 (no leading zeros)", pl[1:]))
	}
	h, why := checkHost(rest)
	if why != "" {
		return bad("host " + strconv.Quote(rest) + ": " + why)
	}
	return uint16(n), h, nil
}

// isPortLabel reports whether l has the shape "_<digits>".
func isPortLabel(l string) bool { return len(l) >= 2 && l[0] == '_' && isDigits(l[1:]) }

// isProtoLabel reports whether l is a protocol label such as "_tcp".
func isProtoLabel(l string) bool {
	switch l {
	case "_tcp", "_udp", "_sctp", "_dccp":
		return true
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
