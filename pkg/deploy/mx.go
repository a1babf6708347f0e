package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// MXReport is `danectl status DOMAIN`: every MX host of a domain, whether a
// lineage here manages it, the TLSA records a sender finds for it and
// whether the chain it presents (one STARTTLS handshake per key algorithm)
// matches them.
type MXReport struct {
	Domain string `json:"domain"`
	// Server is the DNS server that answered ("ip:port"): a provider's
	// resolver, else its query server.
	Server string   `json:"server"`
	Hosts  []MXHost `json:"hosts"`
	// Err is set when the MX RRset could not be read.
	Err string `json:"error,omitempty"`
}

// MXHost is one MX host of an MXReport.
type MXHost struct {
	Preference uint16 `json:"preference"`
	Host       string `json:"host"`
	// Lineages manage the host here; empty means "unmanaged".
	Lineages []string `json:"lineages,omitempty"`
	// Owner is the TLSA owner (_25._tcp.HOST.), CNAMEs the aliases a
	// sender's lookup followed from it to the records.
	Owner  string   `json:"owner"`
	CNAMEs []string `json:"cnames,omitempty"`
	// RecordsAt is the name the records were found at: Owner, or the
	// end of the CNAME chain.
	RecordsAt string `json:"records_at"`
	// TLSA are the records found, as "3 1 1 <hex>".
	TLSA []string `json:"tlsa"`
	// Addrs are the host's addresses; Chains what each algorithm's
	// handshake to the first address presented.
	Addrs  []string  `json:"addresses"`
	Chains []MXChain `json:"chains,omitempty"`
	// OK is true when the host has TLSA records and every chain it
	// presents matches them (State "ok"); Problem says why not.
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
	// State is the gravest finding, one of the MXState values: what a
	// DANE sender meets at this host.
	State MXState `json:"state"`
}

// MXState classifies an MX host by what a DANE sender (RFC 7672) meets
// there, gravest first: a sender that finds usable TLSA records requires
// STARTTLS and a chain matching one of them, and defers mail otherwise
// (RFC 7672 §2.2, §3.1); a host it cannot reach or whose TLSA RRset it
// cannot look up it skips for the next MX; a host without TLSA records
// gets mail without DANE authentication.
type MXState string

// The values of MXState.
const (
	// MXMismatch: the host has TLSA records and a chain it presents (RSA or
	// ECDSA) matches none of them. DANE senders defer mail to it.
	MXMismatch MXState = "mismatch"
	// MXNoSTARTTLS: the host has TLSA records and answers SMTP without
	// offering STARTTLS (or refuses it). DANE senders defer mail to it.
	MXNoSTARTTLS MXState = "no_starttls"
	// MXLookupFailed: the TLSA query for the host failed (SERVFAIL, no
	// answer), so its DANE status is unknown.
	MXLookupFailed MXState = "tlsa_lookup_failed"
	// MXUnreachable: the host has no address, or no TCP connection to its
	// first address succeeded.
	MXUnreachable MXState = "unreachable"
	// MXHandshakeFailed: a STARTTLS handshake failed after connecting (a
	// TLS error, no RSA or ECDSA certificate) while no chain mismatched.
	MXHandshakeFailed MXState = "handshake_failed"
	// MXNoTLSA: no TLSA records at the owner: senders do not use DANE for
	// the host.
	MXNoTLSA MXState = "no_tlsa"
	// MXOK: TLSA records exist and every chain the host presents matches.
	MXOK MXState = "ok"
)

// MXChain is what one STARTTLS handshake of one key algorithm saw.
type MXChain struct {
	Algorithm string `json:"algorithm"`
	Addr      string `json:"address"`
	Leaf      string `json:"leaf,omitempty"`
	// Matches is true when the chain matches the TLSA records with a
	// sender's DANE semantics (postfix.Evaluate, RFC 7672 §3).
	Matches bool `json:"matches"`
	// Served is false when the host has no certificate of this algorithm.
	Served bool   `json:"served"`
	Err    string `json:"error,omitempty"`
}

// OK reports whether the MX RRset was read and every host is OK.
func (r *MXReport) OK() bool {
	if r.Err != "" || len(r.Hosts) == 0 {
		return false
	}
	for _, h := range r.Hosts {
		if !h.OK {
			return false
		}
	}
	return true
}

// mxServers returns the DNS servers MX asks, in order: every provider's
// resolver ("ip:port", asked with recursion desired), then every
// provider's query server (authoritative, recursion off). Never the
// host's resolv.conf.
func (e *Engine) mxServers() []mxServer {
	names := make([]string, 0, len(e.Config.Providers))
	for n := range e.Config.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []mxServer
	add := func(addr string, rd bool) {
		if addr == "" {
			return
		}
		for _, s := range out {
			if s.Addr == addr {
				return
			}
		}
		out = append(out, mxServer{Addr: addr, Recursive: rd})
	}
	for _, n := range names {
		add(e.Config.Providers[n].Resolver, true)
	}
	for _, n := range names {
		p := e.Config.Providers[n]
		if p.Type == "rfc2136" {
			add(p.QueryServer, false)
		}
	}
	return out
}

type mxServer struct {
	Addr      string
	Recursive bool
}

// MX reads the MX RRset of domain from the configured DNS servers (each
// provider's resolver, else its RFC 2136 query server; never the system
// resolver) and reports every MX host: the lineages that manage it, its
// TLSA records (following CNAMEs) and, for each of RSA and ECDSA, whether
// the chain presented by a STARTTLS handshake to the host's first address
// on port (25 when 0) matches them. A domain without MX records is
// reported with its implicit MX, the domain itself (RFC 5321 §5.1). The
// error return is for a configuration without any DNS server; lookup and
// handshake failures are in the report.
func (e *Engine) MX(ctx context.Context, domain string, port int) (*MXReport, error) {
	if port == 0 {
		port = 25
	}
	servers := e.mxServers()
	if len(servers) == 0 {
		return nil, errors.New("status DOMAIN: no DNS server configured: set resolver (a validating resolver, \"ip:port\") or query_server in a [provider.NAME] table")
	}
	domain = dns.Fqdn(strings.ToLower(domain))
	rep := &MXReport{Domain: domain}
	var mxs []*dns.MX
	var lastErr error
	for _, s := range servers {
		r, err := mxAsk(ctx, s, domain, dns.TypeMX)
		if err != nil {
			lastErr = err
			continue
		}
		rep.Server = s.Addr
		for _, rr := range r.Answer {
			if mx, ok := rr.(*dns.MX); ok {
				mxs = append(mxs, mx)
			}
		}
		if len(mxs) == 0 && r.Rcode == dns.RcodeSuccess {
			mxs = []*dns.MX{{Preference: 0, Mx: domain}}
		}
		lastErr = nil
		break
	}
	if lastErr != nil {
		rep.Err = lastErr.Error()
		return rep, nil
	}
	if rep.Server == "" {
		rep.Err = fmt.Sprintf("no server answered for MX %s", domain)
		return rep, nil
	}
	srv := mxServer{}
	for _, s := range servers {
		if s.Addr == rep.Server {
			srv = s
		}
	}
	sort.Slice(mxs, func(i, j int) bool {
		if mxs[i].Preference != mxs[j].Preference {
			return mxs[i].Preference < mxs[j].Preference
		}
		return mxs[i].Mx < mxs[j].Mx
	})
	for _, mx := range mxs {
		rep.Hosts = append(rep.Hosts, e.mxHost(ctx, srv, mx, port))
	}
	return rep, nil
}

func (e *Engine) mxHost(ctx context.Context, srv mxServer, mx *dns.MX, port int) MXHost {
	host := strings.TrimSuffix(strings.ToLower(mx.Mx), ".")
	h := MXHost{Preference: mx.Preference, Host: host, TLSA: []string{}, Addrs: []string{}}
	var err error
	if h.Owner, err = tlsa.Owner(25, host); err != nil {
		h.Problem, h.State = fmt.Sprintf("MX target %q: %v", mx.Mx, err), MXUnreachable
		return h
	}
	for _, name := range e.Config.LineageNames() {
		for _, lh := range e.Config.Lineages[name].Hosts {
			if strings.EqualFold(strings.TrimSuffix(lh, "."), host) {
				h.Lineages = append(h.Lineages, name)
			}
		}
	}
	// TLSA, following CNAMEs as a sender's resolver does: the answer may
	// hold the chain already (a server authoritative for the targets),
	// else the next name is asked.
	var recs []tlsa.Record
	name := h.Owner
	for hops := 0; hops <= maxAliasHops && name != ""; hops++ {
		r, err := mxAsk(ctx, srv, name, dns.TypeTLSA)
		if err != nil {
			h.Problem, h.State = err.Error(), MXLookupFailed
			return h
		}
		cname := map[string]string{}
		for _, rr := range r.Answer {
			if v, ok := rr.(*dns.CNAME); ok {
				cname[strings.ToLower(v.Hdr.Name)] = strings.ToLower(v.Target)
			}
		}
		for t, ok := cname[name]; ok && len(h.CNAMEs) <= maxAliasHops; t, ok = cname[name] {
			h.CNAMEs = append(h.CNAMEs, name)
			name = t
		}
		for _, rr := range r.Answer {
			if v, ok := rr.(*dns.TLSA); ok && strings.EqualFold(v.Hdr.Name, name) {
				if rec, err := tlsa.Parse(fmt.Sprintf("%d %d %d %s", v.Usage, v.Selector, v.MatchingType, v.Certificate)); err == nil {
					recs = append(recs, rec)
				}
			}
		}
		if len(recs) > 0 || len(cname) == 0 {
			break
		}
		// A CNAME to a name the answer did not cover: ask for it.
	}
	h.RecordsAt = name
	for _, r := range recs {
		h.TLSA = append(h.TLSA, r.String())
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := mxAsk(ctx, srv, dns.Fqdn(host), t)
		if err != nil {
			continue
		}
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				h.Addrs = append(h.Addrs, v.A.String())
			case *dns.AAAA:
				h.Addrs = append(h.Addrs, v.AAAA.String())
			}
		}
	}
	if len(h.Addrs) == 0 {
		h.Problem, h.State = fmt.Sprintf("no A or AAAA record for %s at %s", host, srv.Addr), MXUnreachable
		return h
	}
	addr := net.JoinHostPort(h.Addrs[0], strconv.Itoa(port))
	served, matched, unreachable := 0, 0, 0
	var mismatched, noTLS, failed []string
	var firstErr string
	for _, alg := range []postfix.Algorithm{postfix.RSA, postfix.ECDSA} {
		c := MXChain{Algorithm: string(alg), Addr: addr}
		certs, err := postfix.Present(ctx, addr, host, alg)
		switch {
		case errors.Is(err, postfix.ErrAlgorithmUnavailable):
		case err != nil:
			c.Served, c.Err = true, err.Error()
			served++
			if firstErr == "" {
				firstErr = err.Error()
			}
			var oe *net.OpError
			switch {
			case errors.Is(err, postfix.ErrNoSTARTTLS):
				noTLS = append(noTLS, c.Algorithm)
			case errors.As(err, &oe) && oe.Op == "dial":
				unreachable++
			default:
				failed = append(failed, c.Algorithm)
			}
		default:
			c.Served, c.Leaf = true, describeCert(certs)
			c.Matches = len(recs) > 0 && postfix.Evaluate(certs, host, recs, time.Now()).OK()
			served++
			if c.Matches {
				matched++
			} else {
				mismatched = append(mismatched, c.Algorithm)
			}
		}
		h.Chains = append(h.Chains, c)
	}
	switch {
	case served > 0 && unreachable == served:
		h.State, h.Problem = MXUnreachable, "no connection to "+addr+": "+firstErr
	case len(recs) == 0:
		h.State, h.Problem = MXNoTLSA, "no TLSA records at "+h.Owner+": senders do not use DANE for this host"
	case len(mismatched) > 0:
		h.State = MXMismatch
		h.Problem = fmt.Sprintf("the %s chain presented at %s matches none of the TLSA records: DANE senders defer mail to this host", strings.Join(mismatched, " and "), addr)
	case len(noTLS) > 0:
		h.State = MXNoSTARTTLS
		h.Problem = fmt.Sprintf("%s: %s: DANE senders defer mail to this host (it has TLSA records)", addr, firstErr)
	case len(failed) > 0 || unreachable > 0:
		h.State, h.Problem = MXHandshakeFailed, "STARTTLS handshake at "+addr+" failed: "+firstErr
	case served == 0:
		h.State, h.Problem = MXHandshakeFailed, "the host presented no RSA or ECDSA certificate at "+addr
	default:
		h.State, h.OK = MXOK, true
	}
	return h
}

// mxAsk sends one query for name and type t to s (recursion desired when s
// is a resolver) and returns the answer when it is NOERROR or NXDOMAIN.
func mxAsk(ctx context.Context, s mxServer, name string, t uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), t)
	q.RecursionDesired = s.Recursive
	q.SetEdns0(1232, true)
	cl := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := cl.ExchangeContext(ctx, q, s.Addr)
	if err != nil {
		return nil, fmt.Errorf("query %s %s at %s: %w", dns.TypeToString[t], name, s.Addr, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("query %s %s at %s: server answered %s", dns.TypeToString[t], name, s.Addr, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}
