package dnsupdate

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// answer is how the fake server answers one kind of request: an RCODE,
// signed or not, with a TSIG error or not; drop closes the connection.
type answer struct {
	rcode   int
	signed  bool
	tsigErr uint16
	aa      bool
	drop    bool
}

// startShapeServer starts an in-process DNS server over TCP that answers
// every UPDATE with upd and every query with qry, the shapes measured on
// the real servers (the table in diagnose.go): it reproduces how Knot and
// PowerDNS answer where the real ones are not installed.
func startShapeServer(t *testing.T, key *TSIGKey, upd, qry answer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{
		Listener:      ln,
		TsigSecret:    map[string]string{key.Name: key.Secret},
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			a := qry
			if r.Opcode == dns.OpcodeUpdate {
				a = upd
			}
			if a.drop {
				_ = w.Close()
				return
			}
			m := new(dns.Msg)
			m.SetRcode(r, a.rcode)
			m.Authoritative = a.aa
			if req := r.IsTsig(); req != nil && (a.signed || a.tsigErr != 0) {
				m.SetTsig(req.Hdr.Name, req.Algorithm, req.Fudge, time.Now().Unix())
				m.IsTsig().Error = a.tsigErr
			}
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

// TestDiagnoseShapes: each misleading answer shape (decisions D1–D3) is
// classified by the probe's answer, with one probe query and only where
// the UPDATE's answer may mislead.
func TestDiagnoseShapes(t *testing.T) {
	t.Parallel()
	key, err := NewTSIGKey("deploy-key", "hmac-sha256", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	ok := answer{rcode: dns.RcodeSuccess, signed: true, aa: true}
	tests := []struct {
		name     string
		unsigned bool
		upd, qry answer
		class    error
		probes   int64
		contains []string
	}{
		{"PowerDNS TSIG failure: REFUSED unsigned, query NOTAUTH unsigned", false,
			answer{rcode: dns.RcodeRefused}, answer{rcode: dns.RcodeNotAuth, aa: true},
			ErrTSIG, 1, []string{"server answered REFUSED", "without saying why", "NTP"}},
		{"Knot ACL denial: NOTAUTH(BADKEY), key fine on queries", false,
			answer{rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey}, ok,
			ErrRefused, 1, []string{"NOTAUTH(BADKEY)", "update rules deny", "action: update"}},
		{"Knot unsigned: NOTAUTH, zone served", true,
			answer{rcode: dns.RcodeNotAuth}, answer{rcode: dns.RcodeSuccess, aa: true},
			ErrRefused, 1, []string{"NOTAUTH", "not allowed", "sign updates"}},
		{"PowerDNS zone not served: REFUSED signed, query REFUSED", false,
			answer{rcode: dns.RcodeRefused, signed: true}, answer{rcode: dns.RcodeRefused, signed: true},
			ErrNotAuth, 1, []string{"does not serve zone", "zone setting"}},
		{"BIND policy: REFUSED signed, zone served", false,
			answer{rcode: dns.RcodeRefused, signed: true}, ok,
			ErrRefused, 1, []string{"REFUSED: the update is not allowed", "update-policy"}},
		{"unknown key everywhere: BADKEY on both", false,
			answer{rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey}, answer{rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
			ErrTSIG, 1, []string{"NOTAUTH(BADKEY)", "does not know key"}},
		{"BADSIG: no probe", false,
			answer{rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadSig}, ok,
			ErrTSIG, 0, []string{"NOTAUTH(BADSIG)"}},
		{"probe unanswered: the UPDATE's error stays", false,
			answer{rcode: dns.RcodeRefused, signed: true}, answer{drop: true},
			ErrRefused, 1, []string{"REFUSED: the update is not allowed"}},
		{"SERVFAIL: no probe", false,
			answer{rcode: dns.RcodeServerFailure, signed: true}, ok,
			ErrServer, 0, []string{"SERVFAIL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := startShapeServer(t, key, tc.upd, tc.qry)
			p := &RFC2136{Server: addr, Zone: "example.test.", Key: key, Timeout: time.Second}
			if tc.unsigned {
				p.Key = nil
			}
			err := p.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: owner, TTL: 60, Record: rec(1)}}})
			t.Logf("message: %v", err)
			if !errors.Is(err, tc.class) {
				t.Fatalf("got %v, want class %v", err, tc.class)
			}
			if got := p.Sent(); got.Updates != 1 || got.Queries != tc.probes {
				t.Errorf("sent %+v, want 1 UPDATE and %d probe queries", got, tc.probes)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			assertNoSecret(t, err, testSecret)
		})
	}
	// D3: NOTAUTH without a TSIG record to a signed read is a TSIG failure.
	addr := startShapeServer(t, key, ok, answer{rcode: dns.RcodeNotAuth, aa: true})
	p := &RFC2136{Server: addr, Key: key, Timeout: time.Second}
	if _, err := p.Records(t.Context(), owner); !errors.Is(err, ErrTSIG) || !errors.Is(err, errUntoldTSIG) {
		t.Errorf("Records answered NOTAUTH unsigned: got %v, want the untold TSIG failure", err)
	}
	if _, err := p.FindZone(t.Context(), owner); !errors.Is(err, ErrTSIG) {
		t.Errorf("FindZone answered NOTAUTH unsigned: got %v, want ErrTSIG", err)
	}
}
