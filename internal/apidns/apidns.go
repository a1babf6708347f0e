// Package apidns serves, over DNS on 127.0.0.1, what an in-process fake of
// a DNS provider's API holds: the provider's authoritative name servers,
// which danehook reads by direct query (never through the API). It answers
// over TCP and UDP with the AA bit: SOA at the zone apex (in the authority
// section for NODATA), NS ns1.<zone> with A 127.0.0.1 (itself, on the port
// Serve returns: the propagation check's nameserver_port), the RRs the fake
// holds at a name, REFUSED outside its zones. Test-only.
package apidns

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Source returns every zone the fake holds (absolute, lower-case apex) with
// its records, read at each query so API changes show at once.
type Source func() map[string][]dns.RR

// Serve starts the server and returns its "127.0.0.1:port" (the same port
// for TCP and UDP); it stops when t ends.
func Serve(t testing.TB, src Source) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { _ = w.WriteMsg(answer(q, src())) })
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ts := &dns.Server{Listener: tl, Handler: h}
	us := &dns.Server{PacketConn: pc, Handler: h}
	go func() { _ = ts.ActivateAndServe() }()
	go func() { _ = us.ActivateAndServe() }()
	t.Cleanup(func() { _ = ts.Shutdown(); _ = us.Shutdown() })
	return tl.Addr().String()
}

func soa(zone string) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns1." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 604800, Minttl: 300}
}

func answer(q *dns.Msg, zones map[string][]dns.RR) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	if len(q.Question) != 1 {
		r.Rcode = dns.RcodeFormatError
		return r
	}
	name := dns.CanonicalName(q.Question[0].Name)
	zone := ""
	for z := range zones {
		if dns.IsSubDomain(z, name) && len(z) > len(zone) {
			zone = z
		}
	}
	if zone == "" {
		r.Rcode = dns.RcodeRefused
		return r
	}
	r.Authoritative = true
	qt := q.Question[0].Qtype
	switch {
	case qt == dns.TypeSOA && name == zone:
		r.Answer = append(r.Answer, soa(zone))
		return r
	case qt == dns.TypeNS && name == zone:
		r.Answer = append(r.Answer, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: "ns1." + zone})
		return r
	case qt == dns.TypeA && name == "ns1."+zone:
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(127, 0, 0, 1)})
		return r
	}
	for _, rr := range zones[zone] {
		if strings.EqualFold(rr.Header().Name, name) && rr.Header().Rrtype == qt {
			r.Answer = append(r.Answer, dns.Copy(rr))
		}
	}
	if len(r.Answer) == 0 {
		r.Ns = append(r.Ns, soa(zone))
	}
	return r
}

// Intercept replaces http.DefaultTransport with one that sends requests
// for each host in to (host → base URL of a fake) there, lets loopback
// requests through and fails any other, restoring it when t ends. Calls
// nest (each wraps the one before).
func Intercept(t testing.TB, to map[string]string) {
	t.Helper()
	old := http.DefaultTransport
	http.DefaultTransport = roundTrip(func(r *http.Request) (*http.Response, error) {
		host := r.URL.Hostname()
		dst, ok := to[host]
		if !ok {
			if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
				return old.RoundTrip(r) // other in-process servers of the test run
			}
			return nil, fmt.Errorf("apidns: request to %q refused: tests reach no network", r.URL.Host)
		}
		u, _ := url.Parse(dst)
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host, r2.Host = u.Scheme, u.Host, u.Host
		return old.RoundTrip(r2)
	})
	t.Cleanup(func() { http.DefaultTransport = old })
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
