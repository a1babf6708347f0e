package dnsupdate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/miekg/dns"
)

// TestPipelinedReadsFromBIND: 300 reads at once share TCP connections to a
// real BIND, every answer reaches the read that asked (each owner has its
// own record), TSIG verifies per request, and no connection stays open.
func TestPipelinedReadsFromBIND(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: 300})
	p := labProvider(t, l)
	const n = 300
	var cs []Change
	for i := 0; i < n; i++ {
		cs = append(cs, Change{Op: Add, RR: RR{Owner: splitOwner(i), TTL: 300, Record: rec(byte(i))}})
	}
	if err := p.Apply(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			zone, rrs, err := p.ZoneRecords(t.Context(), splitOwner(i))
			switch {
			case err != nil:
				errs[i] = err
			case zone != "example.test." || len(rrs) != 1 || !rrs[0].Record.Equal(rec(byte(i))):
				errs[i] = fmt.Errorf("owner %d: zone %q, records %v; want example.test. and %s", i, zone, rrs, rec(byte(i)))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	p.pmu.Lock()
	open := p.pipe != nil
	p.pmu.Unlock()
	if open {
		t.Error("a connection stays open after every read returned")
	}
}

// reorderServer answers, on each TCP connection, every batch of `batch`
// queries in reverse order, each signed for its own request (RFC 8945
// §5.3); with badMAC the answer to the first query of each batch is signed
// with the wrong request MAC. It counts connections.
func reorderServer(t *testing.T, key *TSIGKey, batch int, badMAC bool) (string, *atomic.Int32) {
	t.Helper()
	return tcpFake(t, func(c net.Conn) {
		for {
			type req struct {
				m   *dns.Msg
				mac string
			}
			var reqs []req
			for len(reqs) < batch {
				m, err := readFrame(c)
				if err != nil || m.IsTsig() == nil {
					return
				}
				reqs = append(reqs, req{m, m.IsTsig().MAC})
			}
			for i := len(reqs) - 1; i >= 0; i-- {
				r := answerFor(reqs[i].m)
				r.SetTsig(key.Name, key.dnsAlgorithm(), tsigFudge, time.Now().Unix())
				mac := reqs[i].mac
				if badMAC && i == 0 {
					mac = reqs[len(reqs)-1].mac
				}
				wire, _, err := dns.TsigGenerate(r, key.Secret, mac, false)
				if err != nil || writeFrame(c, wire) != nil {
					return
				}
			}
		}
	})
}

// tcpFake accepts TCP connections on a loopback port until the test ends
// and runs serve on each (closing it after); it returns the address and
// the count of connections accepted.
func tcpFake(t *testing.T, serve func(c net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// readFrame reads one length-prefixed DNS message from c (RFC 1035
// §4.2.2).
func readFrame(c net.Conn) (*dns.Msg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(buf)
}

// writeFrame writes wire to c with its length prefix.
func writeFrame(c net.Conn, wire []byte) error {
	_, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...))
	return err
}

// answerFor is the fakes' authoritative answer to q: one 3 1 1 record
// whose data bytes are the owner's 10th character ('a' for
// _25._tcp.a.example.test.).
func answerFor(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	r.Authoritative = true
	r.Answer = append(r.Answer, tlsaRR(RR{Owner: q.Question[0].Name, TTL: 60, Record: rec(byte(q.Question[0].Name[9]))}))
	return r
}

// TestPipelinedAnswersOutOfOrder: answers that come back in another order
// than the queries reach the right reads over one connection; an answer
// signed for another request's MAC is a TSIG error for that read only.
func TestPipelinedAnswersOutOfOrder(t *testing.T) {
	t.Parallel()
	key := &TSIGKey{Name: "k.", Algorithm: "hmac-sha256", Secret: testSecret}
	for _, badMAC := range []bool{false, true} {
		t.Run(fmt.Sprintf("badMAC=%v", badMAC), func(t *testing.T) {
			const n = 8
			addr, conns := reorderServer(t, key, n, badMAC)
			p := &RFC2136{Server: addr, Zone: "example.test.", Key: key, Timeout: 5 * time.Second}
			var wg sync.WaitGroup
			errs := make([]error, n)
			// Owner i's 10th byte is 'a'+i: the fake answers rec of that byte.
			for i := 0; i < n; i++ {
				wg.Go(func() {
					o := fmt.Sprintf("_25._tcp.%c.example.test.", 'a'+i)
					rrs, err := p.Records(t.Context(), o)
					if err == nil && (len(rrs) != 1 || !rrs[0].Record.Equal(rec(byte('a'+i)))) {
						err = fmt.Errorf("%s: got %v", o, rrs)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			tsigErrs := 0
			for _, err := range errs {
				switch {
				case err == nil:
				case errors.Is(err, ErrTSIG):
					tsigErrs++
				default:
					t.Errorf("read: %v", err)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[badMAC]; tsigErrs != want {
				t.Errorf("%d reads failed TSIG verification, want %d (%v)", tsigErrs, want, errs)
			}
			if got := conns.Load(); got != 1 {
				t.Errorf("%d reads used %d TCP connections, want 1", n, got)
			}
		})
	}
}

// TestZoneRecordsZoneFromAnswer: the zone comes from the TLSA answer itself
// (SOA of a negative answer, NS of a positive one), the innermost zone
// wins where the server serves a zone and a subzone, a CNAME owner is an
// error, and no SOA query is sent for any of it; FindZone afterwards is
// answered from the cache.
func TestZoneRecordsZoneFromAnswer(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{Zones: []string{"example.test.", "sub.example.test."}})
	l.Nsupdate(t, "update add _25._tcp.mail.example.test. 300 IN TLSA "+rec(1).String())
	l.Nsupdate(t, "zone sub.example.test.\nupdate add _25._tcp.mx.sub.example.test. 300 IN TLSA "+rec(2).String())
	l.Nsupdate(t, "update add _25._tcp.alias.example.test. 300 IN CNAME _25._tcp.mail.example.test.")
	p := labProvider(t, l)
	for _, tc := range []struct {
		owner, zone string
		n           int
	}{
		{"_25._tcp.mail.example.test.", "example.test.", 1},          // positive
		{"_25._tcp.none.example.test.", "example.test.", 0},          // NXDOMAIN
		{"mail.example.test.", "example.test.", 0},                   // NODATA
		{"_25._tcp.mx.sub.example.test.", "sub.example.test.", 1},    // positive, subzone
		{"_25._tcp.other.sub.example.test.", "sub.example.test.", 0}, // NXDOMAIN, subzone
	} {
		zone, rrs, err := p.ZoneRecords(t.Context(), tc.owner)
		if err != nil || zone != tc.zone || len(rrs) != tc.n {
			t.Errorf("ZoneRecords(%s) = %q, %d records, %v; want %q and %d", tc.owner, zone, len(rrs), err, tc.zone, tc.n)
		}
		if z, err := p.FindZone(t.Context(), tc.owner); err != nil || z != tc.zone {
			t.Errorf("FindZone(%s) after ZoneRecords = %q, %v", tc.owner, z, err)
		}
	}
	if _, _, err := p.ZoneRecords(t.Context(), "_25._tcp.alias.example.test."); !errors.Is(err, ErrNotAuth) {
		t.Errorf("ZoneRecords at a CNAME: %v, want ErrNotAuth", err)
	}
	// One query per ZoneRecords (the TLSA read), none for FindZone: no SOA
	// query at all.
	if got := p.Sent().Queries; got != 6 {
		t.Errorf("%d queries for 6 ZoneRecords and 5 FindZone, want 6 (the zone comes from the TLSA answers)", got)
	}
}

// TestPipelineServerClosesConnection: a server may close a TCP connection
// with queries in flight (RFC 7766 §6.2.3; a miekg/dns server does after
// MaxTCPQueries, PowerDNS after max-tcp-connection-queries). The reads
// lost with it are asked again on a new connection, and every read
// succeeds; a server that closes every connection still fails the reads,
// after pipeAttempts tries each.
func TestPipelineServerClosesConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		maxQueries int // per connection; 0: the server answers nothing
		wantErr    bool
	}{
		{"closes after 7 queries", 7, false},
		{"closes after 1 query", 1, false},
		{"closes every connection unanswered", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := tcpFake(t, func(c net.Conn) {
				for i := 0; i < tc.maxQueries; i++ {
					q, err := readFrame(c)
					if err != nil {
						return
					}
					wire, _ := answerFor(q).Pack()
					if writeFrame(c, wire) != nil {
						return
					}
				}
				// Close with queries possibly still in flight.
			})
			p := &RFC2136{Server: addr, Zone: "example.test.", Timeout: 5 * time.Second}
			const n = 40
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Go(func() {
					o := fmt.Sprintf("_25._tcp.%c.example.test.", 'a'+i%26)
					rrs, err := p.Records(t.Context(), o)
					if err == nil && (len(rrs) != 1 || !rrs[0].Record.Equal(rec(byte('a'+i%26)))) {
						err = fmt.Errorf("%s: got %v", o, rrs)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			failed := 0
			for _, err := range errs {
				if err != nil {
					failed++
					if !tc.wantErr {
						t.Errorf("read: %v", err)
					}
				}
			}
			if tc.wantErr && failed != n {
				t.Errorf("%d of %d reads failed against a server that answers nothing, want all", failed, n)
			}
			if !tc.wantErr && conns.Load() < 2 {
				t.Errorf("%d connections: the server never closed one, the test proves nothing", conns.Load())
			}
		})
	}
}
