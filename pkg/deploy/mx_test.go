package deploy

import (
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestMXReportsEveryHost: `status DOMAIN` reads the MX RRset from the
// configured servers (the lab's BIND, never resolv.conf) and reports each
// host: managed by the lineages here or unmanaged, its TLSA (followed
// through a CNAME), and per algorithm whether the real Postfix's chain
// matches.
func TestMXReportsEveryHost(t *testing.T) {
	e, lab, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem", "rsa.pem"}})
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	ec, _, _ := readChainFile(e.Config.Lineages["ecdsa"].ChainFile)
	if ec == nil || chain.KeyAlgorithm(ec.Leaf.PublicKey) != chain.AlgorithmECDSA {
		t.Fatalf("ecdsa chain file: %v", ec)
	}
	ecRec := "3 1 1 " + tlsa.SPKIDigestHex(ec.Leaf)
	lab.Nsupdate(t, `update add example.test. 1 IN MX 10 mail.example.test.
update add example.test. 1 IN MX 20 mx2.example.test.
update add example.test. 1 IN MX 30 mx3.example.test.
update add example.test. 1 IN MX 40 mx4.example.test.
update add mx2.example.test. 1 IN A 127.0.0.1
update add mx3.example.test. 1 IN A 127.0.0.1
update add mx4.example.test. 1 IN A 127.0.0.1
update add _25._tcp.mx2.example.test. 1 IN TLSA `+ecRec+`
update add _25._tcp.mx3.example.test. 1 IN CNAME _25._tcp.mail.example.test.
send
`)
	_, port, _ := strings.Cut(pf.Addr, ":")
	// mx5 has no address, mx6's address refuses connections, mx7 answers
	// SMTP without STARTTLS; all three have a TLSA record.
	noTLS := smtpWithoutSTARTTLS(t, "127.0.0.9:"+port)
	lab.Nsupdate(t, `update add example.test. 1 IN MX 50 mx5.example.test.
update add example.test. 1 IN MX 60 mx6.example.test.
update add example.test. 1 IN MX 70 mx7.example.test.
update add mx6.example.test. 1 IN A 127.0.0.10
update add mx7.example.test. 1 IN A 127.0.0.9
update add _25._tcp.mx5.example.test. 1 IN TLSA `+ecRec+`
update add _25._tcp.mx6.example.test. 1 IN TLSA `+ecRec+`
update add _25._tcp.mx7.example.test. 1 IN TLSA `+ecRec+`
send
`)
	rep, err := e.MX(t.Context(), "Example.Test", atoiT(t, port))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != "" || rep.Server == "" || len(rep.Hosts) != 7 {
		t.Fatalf("report = %+v, want 7 hosts", rep)
	}
	wantState := map[string]MXState{"mail.example.test": MXOK, "mx2.example.test": MXMismatch, "mx3.example.test": MXOK,
		"mx4.example.test": MXNoTLSA, "mx5.example.test": MXUnreachable, "mx6.example.test": MXUnreachable, "mx7.example.test": MXNoSTARTTLS}
	for _, h := range rep.Hosts {
		if h.State != wantState[h.Host] {
			t.Errorf("%s: state %q (%s), want %q", h.Host, h.State, h.Problem, wantState[h.Host])
		}
	}
	if noTLS() == 0 {
		t.Error("the SMTP server without STARTTLS was never asked")
	}
	if h := rep.Hosts[5]; !strings.Contains(h.Problem, "no connection to 127.0.0.10:"+port) {
		t.Errorf("mx6 problem %q, want it to name the address it could not reach", h.Problem)
	}
	byHost := map[string]MXHost{}
	for _, h := range rep.Hosts {
		byHost[h.Host] = h
	}
	mail, mx2, mx3, mx4 := byHost["mail.example.test"], byHost["mx2.example.test"], byHost["mx3.example.test"], byHost["mx4.example.test"]
	if !mail.OK || strings.Join(mail.Lineages, ",") != "ecdsa,rsa" || len(mail.TLSA) != 2 {
		t.Errorf("mail = %+v, want OK, managed by ecdsa,rsa, 2 records", mail)
	}
	for _, c := range mail.Chains {
		if !c.Served || !c.Matches {
			t.Errorf("mail %s chain = %+v, want served and matching", c.Algorithm, c)
		}
	}
	if mx2.OK || len(mx2.Lineages) != 0 || !strings.Contains(mx2.Problem, string(postfix.RSA)) || strings.Contains(mx2.Problem, "ecdsa") {
		t.Errorf("mx2 = %+v, want unmanaged, not OK: its RSA chain matches no record", mx2)
	}
	if !mx3.OK || len(mx3.CNAMEs) != 1 || mx3.CNAMEs[0] != "_25._tcp.mx3.example.test." || mx3.RecordsAt != owner {
		t.Errorf("mx3 = %+v, want OK through the CNAME", mx3)
	}
	if mx4.OK || !strings.Contains(mx4.Problem, "no TLSA records") {
		t.Errorf("mx4 = %+v, want 'no TLSA records'", mx4)
	}
	if rep.OK() {
		t.Error("report OK with failing hosts")
	}
	// A domain without MX: its implicit MX (RFC 5321 §5.1) is the domain.
	rep, err = e.MX(t.Context(), "mail.example.test", atoiT(t, port))
	if err != nil || len(rep.Hosts) != 1 || rep.Hosts[0].Host != "mail.example.test" || !rep.OK() {
		t.Errorf("implicit MX: %+v, %v", rep, err)
	}
}

// smtpWithoutSTARTTLS serves SMTP on addr (RFC 5321: a 220 greeting, 250
// to EHLO without the STARTTLS keyword, 221 to QUIT) until the test ends;
// the function returned counts the EHLO commands it answered.
func smtpWithoutSTARTTLS(t *testing.T, addr string) func() int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	ehlos := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tp := textproto.NewConn(c)
				tp.PrintfLine("220 mx7.example.test ESMTP")
				for {
					l, err := tp.ReadLine()
					if err != nil {
						return
					}
					switch v := strings.ToUpper(strings.Fields(l + " x")[0]); v {
					case "EHLO":
						mu.Lock()
						ehlos++
						mu.Unlock()
						tp.PrintfLine("250-mx7.example.test\r\n250 PIPELINING")
					case "QUIT":
						tp.PrintfLine("221 bye")
						return
					default:
						tp.PrintfLine("502 5.5.2 %s not implemented", v)
					}
				}
			}()
		}
	}()
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return ehlos
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
