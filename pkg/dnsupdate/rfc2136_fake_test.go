package dnsupdate

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startBadTimeServer starts an in-process DNS server over TCP on
// 127.0.0.1:0 whose clock runs skew ahead of ours. It knows key and, like
// BIND, follows RFC 8945 §5.2.3 for a request whose Time Signed is outside
// its fudge window: it answers RCODE NOTAUTH with TSIG Error BADTIME, signed
// with the same key (§5.3.2: time errors are signed, key and MAC errors are
// not), with the request's Time Signed in the TSIG RR and the server's own
// current time as a 48-bit Other Data field, so the client can both verify
// the answer and read the server's clock.
func startBadTimeServer(t *testing.T, key *TSIGKey, skew time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{
		Listener:   ln,
		TsigSecret: map[string]string{key.Name: key.Secret},
		// The default accept function answers UPDATE with NOTIMP.
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			req := r.IsTsig()
			if req == nil {
				m.SetRcode(r, dns.RcodeRefused)
				_ = w.WriteMsg(m)
				return
			}
			// The signature verifies (same key); only the time is off for this server.
			if err := w.TsigStatus(); err != nil && !errors.Is(err, dns.ErrTime) {
				m.SetRcode(r, dns.RcodeNotAuth)
				m.SetTsig(req.Hdr.Name, req.Algorithm, req.Fudge, int64(req.TimeSigned))
				m.IsTsig().Error = dns.RcodeBadSig
				_ = w.WriteMsg(m)
				return
			}
			serverNow := time.Now().Add(skew).Unix()
			d := serverNow - int64(req.TimeSigned)
			if d < 0 {
				d = -d
			}
			if d <= int64(req.Fudge) {
				m.SetRcode(r, dns.RcodeSuccess)
				m.SetTsig(req.Hdr.Name, req.Algorithm, req.Fudge, serverNow)
				_ = w.WriteMsg(m)
				return
			}
			m.SetRcode(r, dns.RcodeNotAuth)
			m.SetTsig(req.Hdr.Name, req.Algorithm, req.Fudge, int64(req.TimeSigned))
			tsig := m.IsTsig()
			tsig.Error = dns.RcodeBadTime
			tsig.OtherLen = 6
			tsig.OtherData = fmt.Sprintf("%012x", serverNow)
			_ = w.WriteMsg(m)
		}),
	}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func TestBadTimeFromFakeServer(t *testing.T) {
	t.Parallel()
	key, err := NewTSIGKey("deploy-key", "hmac-sha256", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	addr := startBadTimeServer(t, key, 2*time.Hour)
	p := &RFC2136{Server: addr, Zone: "example.test.", Key: key, Timeout: 2 * time.Second}
	err = p.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}})
	var ue *UpdateError
	if !errors.Is(err, ErrTSIG) || !errors.As(err, &ue) || ue.TSIGError != dns.RcodeBadTime {
		t.Fatalf("got %v, want ErrTSIG with BADTIME", err)
	}
	if s := ue.Skew(); s > -119*time.Minute || s < -121*time.Minute {
		t.Fatalf("skew: got %v, want about -2h", s)
	}
	for _, s := range []string{"NOTAUTH(BADTIME)", "7200 s", "behind", "NTP", addr, `"deploy-key."`, `"example.test."`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	assertNoSecret(t, err, testSecret)

	// The same server with an in-sync clock accepts the update.
	ok := &RFC2136{Server: startBadTimeServer(t, key, 0), Zone: "example.test.", Key: key}
	if err := ok.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}}); err != nil {
		t.Fatalf("in-sync server: %v", err)
	}
}

func TestUpdateErrorMessages(t *testing.T) {
	base := UpdateError{Op: "update", Server: "192.0.2.53:53", Zone: "example.com.", Owner: "_25._tcp.mail.example.com.", Type: "TLSA", KeyName: "deploy."}
	tests := []struct {
		name     string
		rcode    int
		class    error
		contains []string
	}{
		{"notzone", dns.RcodeNotZone, ErrNotAuth, []string{"NOTZONE", "not in zone \"example.com.\"", "zone setting"}},
		{"servfail", dns.RcodeServerFailure, ErrServer, []string{"SERVFAIL", "192.0.2.53:53", "server's log"}},
		{"yxrrset", dns.RcodeYXRrset, ErrPrerequisite, []string{"YXRRSET", "re-run"}},
		{"refused", dns.RcodeRefused, ErrRefused, []string{`grant "deploy." name _25._tcp.mail.example.com. TLSA;`}},
		{"notauth", dns.RcodeNotAuth, ErrNotAuth, []string{"not authoritative for zone \"example.com.\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.rcode, 0); got != tc.class {
				t.Fatalf("classify(%s): got %v, want %v", dns.RcodeToString[tc.rcode], got, tc.class)
			}
			e := base
			e.Class, e.Rcode = tc.class, tc.rcode
			var err error = &e
			if !errors.Is(err, tc.class) {
				t.Fatalf("errors.Is(%v): false", tc.class)
			}
			for _, s := range append(tc.contains, `"_25._tcp.mail.example.com."`, "192.0.2.53:53", `"deploy."`) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// startTruncatingServer starts an in-process DNS server over TCP on
// 127.0.0.1:0 that answers every message signed with key (as BIND does) and
// with the TC bit set when truncate() says so: an UPDATE gets NOERROR, a TLSA
// query the first of two records. It counts the messages it answered.
func startTruncatingServer(t *testing.T, key *TSIGKey, truncate func() bool) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	records := []dns.RR{}
	for _, b := range []byte{0x01, 0x02} {
		records = append(records, tlsaRR(RR{Owner: owner, TTL: 60, Record: rec(b)}))
	}
	srv := &dns.Server{
		Listener:      ln,
		TsigSecret:    map[string]string{key.Name: key.Secret},
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			n.Add(1)
			m := new(dns.Msg)
			m.SetReply(r)
			m.Authoritative = true
			tc := truncate()
			if r.Opcode == dns.OpcodeQuery && r.Question[0].Qtype == dns.TypeTLSA {
				m.Answer = records
				if tc {
					m.Answer = records[:1]
				}
			}
			m.Truncated = tc
			if req := r.IsTsig(); req != nil && w.TsigStatus() == nil {
				m.SetTsig(req.Hdr.Name, req.Algorithm, req.Fudge, time.Now().Unix())
			}
			_ = w.WriteMsg(m)
		}),
	}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String(), &n
}

// TestTruncatedAnswers: an UPDATE answered NOERROR with TC set is not a
// success, and a truncated TLSA answer is not the RRset (decision T1): both
// are ErrServer errors wrapping ErrTruncated. The same server without TC is
// a success with both records, so the test tells the two apart.
func TestTruncatedAnswers(t *testing.T) {
	t.Parallel()
	key, err := NewTSIGKey("deploy-key", "hmac-sha256", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	var tc atomic.Bool
	addr, answered := startTruncatingServer(t, key, tc.Load)
	p := &RFC2136{Server: addr, Zone: "example.test.", Key: key, Timeout: 2 * time.Second}
	add := []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}}

	if err := p.Apply(t.Context(), add); err != nil {
		t.Fatalf("Apply, no TC: %v", err)
	}
	if rrs, err := p.Records(t.Context(), owner); err != nil || len(rrs) != 2 {
		t.Fatalf("Records, no TC: got %d records, %v; want 2", len(rrs), err)
	}

	tc.Store(true)
	before := answered.Load()
	for name, call := range map[string]func() error{
		"update": func() error { return p.Apply(t.Context(), add) },
		"read":   func() error { _, err := p.Records(t.Context(), owner); return err },
	} {
		err := call()
		var ue *UpdateError
		if !errors.Is(err, ErrServer) || !errors.Is(err, ErrTruncated) || !errors.As(err, &ue) {
			t.Fatalf("%s with TC: got %v, want an *UpdateError of class ErrServer wrapping ErrTruncated", name, err)
		}
		if errors.Is(err, ErrTSIG) || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s with TC: error %q: want a truncation error naming the server, not a TSIG one", name, err)
		}
		assertNoSecret(t, err, testSecret)
		t.Logf("message: %v", err)
	}
	if got := answered.Load() - before; got != 2 {
		t.Errorf("messages answered with TC: got %d, want 2 (one each, already over TCP: nothing to retry on)", got)
	}
}
