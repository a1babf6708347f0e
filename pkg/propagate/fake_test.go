package propagate

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fake is an in-process DNS server for fault injection: it answers from a
// fixed list of records, authoritatively unless told otherwise.
type fake struct {
	t           *testing.T
	mu          sync.Mutex
	rrs         []dns.RR
	truncateUDP bool // answer every UDP query with TC set and no records
	truncateTCP bool // answer every TCP query with TC set and only the first answer record (a broken server)
	recursive   bool // behave as a resolver: RA set, no AA
	ad          bool // set the AD bit (resolver only, when asked with DO)
	noAA        bool // answer without the AA bit (a lame server)
	rcode       int  // answer every query with this RCODE when non-zero
	silent      bool // never answer

	udp, tcp atomic.Int32
	rd       atomic.Int32 // queries that arrived with RD set
}

// newFake returns a fake serving the records given in zone-file syntax.
func newFake(t *testing.T, records ...string) *fake {
	t.Helper()
	f := &fake{t: t}
	f.set(t, records...)
	return f
}

// set replaces the records f serves.
func (f *fake) set(t *testing.T, records ...string) {
	t.Helper()
	var rrs []dns.RR
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("fake record %q: %v", s, err)
		}
		rrs = append(rrs, rr)
	}
	f.mu.Lock()
	f.rrs = rrs
	f.mu.Unlock()
}

func (f *fake) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if strings.HasPrefix(w.LocalAddr().Network(), "udp") {
		f.udp.Add(1)
	} else {
		f.tcp.Add(1)
	}
	if r.RecursionDesired {
		f.rd.Add(1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.silent || len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = !f.recursive && !f.noAA
	m.RecursionAvailable = f.recursive
	do := false
	if opt := r.IsEdns0(); opt != nil {
		do = opt.Do()
		m.SetEdns0(opt.UDPSize(), do)
	}
	if f.rcode != 0 {
		m.Rcode = f.rcode
		_ = w.WriteMsg(m)
		return
	}
	exists := false
	for _, rr := range f.rrs {
		if !strings.EqualFold(rr.Header().Name, q.Name) {
			continue
		}
		exists = true
		switch {
		case rr.Header().Rrtype == q.Qtype:
			m.Answer = append(m.Answer, rr)
		case do && rr.Header().Rrtype == dns.TypeRRSIG && rr.(*dns.RRSIG).TypeCovered == q.Qtype:
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range f.rrs {
			if rr.Header().Rrtype == dns.TypeSOA {
				m.Ns = append(m.Ns, rr)
			}
		}
	}
	m.AuthenticatedData = f.recursive && f.ad && do
	if f.truncateUDP && strings.HasPrefix(w.LocalAddr().Network(), "udp") {
		m.Truncated = true
		m.Answer, m.Ns = nil, nil
	}
	if f.truncateTCP && !strings.HasPrefix(w.LocalAddr().Network(), "udp") {
		m.Truncated = true
		m.Answer, m.Ns = m.Answer[:min(len(m.Answer), 1)], nil
	}
	if err := w.WriteMsg(m); err != nil {
		f.t.Errorf("fake DNS server: write answer to %s: %v", q.String(), err)
	}
}

// serve starts one handler per IP address, all on the same port, over UDP
// and TCP, and returns that port. The servers stop when the test ends.
func serve(t *testing.T, hs map[string]dns.Handler) int {
	t.Helper()
	var ips []string
	for ip := range hs {
		ips = append(ips, ip)
	}
	for range 50 {
		port, pcs, ls, ok := listenAll(t, ips)
		if !ok {
			continue
		}
		for i, ip := range ips {
			start(t, &dns.Server{PacketConn: pcs[i], Handler: hs[ip]})
			start(t, &dns.Server{Listener: ls[i], Handler: hs[ip]})
		}
		return port
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// listenAll binds UDP and TCP on one port on every IP, or closes what it
// opened and returns false.
func listenAll(t *testing.T, ips []string) (int, []net.PacketConn, []net.Listener, bool) {
	t.Helper()
	var (
		pcs  []net.PacketConn
		ls   []net.Listener
		port = 0
	)
	closeAll := func() {
		for _, c := range pcs {
			c.Close()
		}
		for _, l := range ls {
			l.Close()
		}
	}
	for _, ip := range ips {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			closeAll()
			if port == 0 {
				t.Fatalf("listen udp on %s: %v", ip, err)
			}
			return 0, nil, nil, false
		}
		pcs = append(pcs, pc)
		port = pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			closeAll()
			return 0, nil, nil, false
		}
		ls = append(ls, l)
	}
	return port, pcs, ls, true
}

// start runs srv until the test ends.
func start(t *testing.T, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("in-process DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
}

// closedPort returns a loopback UDP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

// addr joins ip and port.
func addr(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// zone returns the records of a small zone example.test. whose primary
// serves serial, with the NS names and extra records given.
func zone(serial uint32, extra ...string) []string {
	return append([]string{
		"example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. " + strconv.FormatUint(uint64(serial), 10) + " 3600 600 86400 300",
	}, extra...)
}

// Records used throughout the tests: distinct 3 1 1 digests.
const (
	hexA = "0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3"
	hexB = "1b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3"
	hexC = "2b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3"
)
