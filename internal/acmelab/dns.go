package acmelab

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// LoopbackDNS starts an in-process DNS server on 127.0.0.1 (UDP and TCP on
// the same free port; Pebble queries over TCP) that answers every A query
// with 127.0.0.1 and every other query with an authoritative NOERROR and an
// empty answer (NODATA, RFC 2308 §2.2). It returns its "127.0.0.1:PORT", for
// Options.DNSServer when a test needs no real zone, and stops the server on
// cleanup. Pebble's HTTP-01 validation then connects to 127.0.0.1:HTTPPort
// for any identifier.
func LoopbackDNS(t testing.TB) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA && question.Qclass == dns.ClassINET {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("acmelab: listen UDP: %v", err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp4", addr)
		if err != nil { // TCP port taken: try another UDP port
			pc.Close()
			continue
		}
		udp := &dns.Server{PacketConn: pc, Handler: handler}
		tcp := &dns.Server{Listener: ln, Handler: handler}
		started := make(chan struct{}, 2)
		udp.NotifyStartedFunc = func() { started <- struct{}{} }
		tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { _ = udp.ActivateAndServe() }()
		go func() { _ = tcp.ActivateAndServe() }()
		for range 2 {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatalf("acmelab: loopback DNS on %s did not start", addr)
			}
		}
		t.Cleanup(func() {
			_ = udp.Shutdown()
			_ = tcp.Shutdown()
		})
		return addr
	}
	t.Fatalf("acmelab: no free UDP+TCP port pair on 127.0.0.1 for the loopback DNS")
	return ""
}
