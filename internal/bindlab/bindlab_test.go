package bindlab

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = false
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("query %s %s at %s: %v", name, dns.TypeToString[qtype], addr, err)
	}
	return r
}

func TestStartServesZoneOnBoth(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	for _, addr := range []string{l.Primary, l.Secondary} {
		r := query(t, addr, "example.test.", dns.TypeNS)
		if !r.Authoritative || len(r.Answer) != 2 {
			t.Fatalf("NS at %s: got aa=%v %d answers, want aa and 2", addr, r.Authoritative, len(r.Answer))
		}
		r = query(t, addr, "ns2.example.test.", dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != SecondaryIP {
			t.Fatalf("ns2 A at %s: got %v, want %s", addr, r.Answer, SecondaryIP)
		}
		r = query(t, addr, "mail.example.test.", dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 2 {
			t.Fatalf("mail A at %s: got %v, want one record with TTL 2", addr, r.Answer)
		}
	}
	if _, port, _ := net.SplitHostPort(l.Secondary); port != strings.TrimPrefix(l.Primary, "127.0.0.1:") {
		t.Fatalf("ports differ: %s vs %s", l.Primary, l.Secondary)
	}
	fi, err := os.Stat(l.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: got %v %v, want mode 0600", l.KeyFile, fi.Mode(), err)
	}
	if l.KeySecret() == "" {
		t.Fatalf("KeySecret: got empty")
	}
}

func TestNotifyBlockUnblockStop(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{Zones: []string{"a.test.", "b.test."}})
	s0 := l.Serial(t, l.Primary, "a.test.")

	l.Nsupdate(t, "update add _25._tcp.mail.a.test. 2 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	l.WaitSerial(t, l.Secondary, "a.test.", s0+1, 5*time.Second)
	r := query(t, l.Secondary, "_25._tcp.mail.a.test.", dns.TypeTLSA)
	if len(r.Answer) != 1 {
		t.Fatalf("TLSA on secondary after NOTIFY: got %v, want 1 record", r.Answer)
	}

	l.BlockTransfers(t)
	l.Nsupdate(t, "update add _25._tcp.mail.a.test. 2 IN TLSA 3 1 1 "+strings.Repeat("cd", 32))
	l.WaitSerial(t, l.Primary, "a.test.", s0+2, 5*time.Second)
	time.Sleep(3 * time.Second) // longer than refresh (2 s) and retry (1 s)
	if got := l.Serial(t, l.Secondary, "a.test."); got != s0+1 {
		t.Fatalf("secondary serial while blocked: got %d, want %d", got, s0+1)
	}
	l.UnblockTransfers(t)
	l.WaitSerial(t, l.Secondary, "a.test.", s0+2, 5*time.Second)

	l.StopSecondary(t)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	q := new(dns.Msg)
	q.SetQuestion("a.test.", dns.TypeSOA)
	if _, _, err := c.Exchange(q, l.Secondary); err == nil {
		t.Fatalf("query to stopped secondary: got an answer, want an error")
	}
	l.StartSecondary(t)
	l.WaitSerial(t, l.Secondary, "b.test.", 1, 5*time.Second)
}

func TestSignedAndExtraKeys(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{Signed: true, ExtraKeys: []ExtraKey{{
		Name:   "narrow",
		Grants: []string{`grant "narrow." name _25._tcp.mail.example.test. TLSA;`},
	}}})
	// Start returns only once both servers serve the zone signed with the
	// same serial: a validating resolver stubbed to both may ask either.
	if p, s := l.Serial(t, l.Primary, "example.test."), l.Serial(t, l.Secondary, "example.test."); p != s {
		t.Errorf("right after Start: primary serial %d, secondary %d; want them equal", p, s)
	}
	for _, addr := range []string{l.Primary, l.Secondary} {
		if err := signed(addr, "example.test."); err != nil {
			t.Errorf("right after Start: %v", err)
		}
	}
	r := query(t, l.Secondary, "example.test.", dns.TypeDNSKEY)
	if len(r.Answer) == 0 {
		t.Fatalf("DNSKEY on secondary: got none, want the signed zone")
	}
	k := l.Keys["narrow."]
	if _, err := l.NsupdateKey(k.File, "update add _25._tcp.mail.example.test. 2 IN TLSA 3 1 1 "+strings.Repeat("ef", 32)); err != nil {
		t.Fatalf("granted update with narrow key: %v", err)
	}
	out, err := l.NsupdateKey(k.File, "update add _25._tcp.other.example.test. 2 IN TLSA 3 1 1 "+strings.Repeat("ef", 32))
	if err == nil || !strings.Contains(out, "REFUSED") {
		t.Fatalf("update outside grant: got %v %q, want REFUSED", err, out)
	}
}
