package judgelab

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

const host = postfixlab.Hostname

// lab is a signed BIND pair, a Postfix serving an RSA and an ECDSA chain,
// the lab resolver and the judge.
type lab struct {
	bind     *bindlab.Lab
	pf       *postfixlab.Lab
	r        *Resolver
	j        *Judge
	owner    string
	rsa, ecd tlsa.Record // 3 1 1 of each chain's key
}

func startLab(t *testing.T) *lab {
	t.Helper()
	b := bindlab.Start(t, bindlab.Options{Signed: true})
	pf := postfixlab.Start(t, postfixlab.Options{ChainFiles: []string{"rsa.pem", "ecdsa.pem"}})
	r := StartResolver(t, ResolverOptions{
		Zone:        bindlab.DefaultZone,
		Servers:     []string{b.Primary, b.Secondary},
		TrustAnchor: TrustAnchorFrom(t, b.Primary, bindlab.DefaultZone),
	})
	return &lab{
		bind: b, pf: pf, r: r, j: NewJudge(t, r),
		owner: fmt.Sprintf("_%d._tcp.%s.", pf.Port, host),
		rsa:   keyRecord(t, pf.ChainFiles[0]),
		ecd:   keyRecord(t, pf.ChainFiles[1]),
	}
}

// keyRecord is the 3 1 1 record of the leaf in a chain file.
func keyRecord(t *testing.T, path string) tlsa.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no certificate", path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := tlsa.FromCertificate(c, 3, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
}

func keyHex(r tlsa.Record) string { return hex.EncodeToString(r.Data) }

// publish replaces the owner's TLSA RRset with recs (TTL ttl) in one UPDATE
// and waits until the secondary has it.
func (l *lab) publish(t *testing.T, ttl int, recs ...tlsa.Record) {
	t.Helper()
	script := "update delete " + l.owner + " IN TLSA\n"
	for _, r := range recs {
		script += fmt.Sprintf("update add %s %d IN TLSA %s\n", l.owner, ttl, r)
	}
	l.bind.Nsupdate(t, script)
	l.bind.WaitSerial(t, l.bind.Secondary, bindlab.DefaultZone, l.bind.Serial(t, l.bind.Primary, bindlab.DefaultZone), 10*time.Second)
}

// until runs the judge until want holds (the resolver's cache must expire
// first) and returns that verdict; it fails t after timeout.
func (l *lab) until(t *testing.T, alg Algorithm, timeout time.Duration, what string, want func(Verdict) bool) Verdict {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen string
	for {
		v := l.j.Check(t.Context(), host, l.pf.Port, alg)
		if v.Err != nil {
			t.Fatalf("judge: %v\n%s", v.Err, v.Output)
		}
		if want(v) {
			return v
		}
		if state := fmt.Sprint(v.Verified, v.Untrusted, v.NoTLSA, v.Key); state != seen {
			seen = state
			t.Logf("judge at %s: %v (waiting for %s)", v.At.Format("15:04:05.000"), v, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("judge %s: want %s within %v; last %v\n%s", alg, what, timeout, v, v.Output)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func verified(v Verdict) bool  { return v.Verified && !v.Untrusted && !v.NoTLSA }
func untrusted(v Verdict) bool { return v.Untrusted && !v.Verified && !v.NoTLSA }

// TestJudgeVerdicts: no record → NoTLSA; the keys' 3 1 1 → Verified, the
// forced RSA and ECDSA handshakes each presenting their own key; only the
// RSA record → RSA Verified, ECDSA Untrusted; a wrong record → Untrusted.
func TestJudgeVerdicts(t *testing.T) {
	t.Parallel()
	l := startLab(t)

	v := l.j.Check(t.Context(), host, l.pf.Port, Default)
	if v.Err != nil || !v.NoTLSA || v.Verified || !v.OK() {
		t.Fatalf("no TLSA record: got %v (NoTLSA %v, Verified %v, OK %v); want NoTLSA, OK\n%s", v, v.NoTLSA, v.Verified, v.OK(), v.Output)
	}

	l.publish(t, 2, l.rsa, l.ecd)
	v = l.until(t, Default, 10*time.Second, "Verified", verified)
	if !strings.HasPrefix(v.Line, "Verified TLS connection established to "+host) || v.Matched == "" {
		t.Errorf("default: Line %q, Matched %q; want the Verified line and the matched record", v.Line, v.Matched)
	}
	t.Logf("default with both chains: %v", v)
	for _, c := range []struct {
		alg  Algorithm
		want tlsa.Record
	}{{RSA, l.rsa}, {ECDSA, l.ecd}} {
		v := l.j.Check(t.Context(), host, l.pf.Port, c.alg)
		if !verified(v) || v.Key != keyHex(c.want) || !strings.EqualFold(strings.Fields(v.Matched)[3], keyHex(c.want)) {
			t.Errorf("%s: got %v (key %s, matched %q); want Verified with key %s\n%s", c.alg, v, v.Key, v.Matched, keyHex(c.want), v.Output)
		}
		if !strings.Contains(v.Output, "TLSv1.2") {
			t.Errorf("%s: want a TLS 1.2 handshake (cipher lists name the key type only there)\n%s", c.alg, v.Output)
		}
	}

	l.publish(t, 2, l.rsa)
	v = l.until(t, ECDSA, 10*time.Second, "Untrusted", untrusted)
	if v.Key != keyHex(l.ecd) || !strings.Contains(v.Line, "num=65") {
		t.Errorf("ECDSA with only the RSA record: got %v, line %q; want key %s and num=65", v, v.Line, keyHex(l.ecd))
	}
	if v := l.j.Check(t.Context(), host, l.pf.Port, RSA); !verified(v) || v.Key != keyHex(l.rsa) {
		t.Errorf("RSA with only the RSA record: got %v; want Verified with key %s\n%s", v, keyHex(l.rsa), v.Output)
	}

	wrong := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	wrong.Data[0] = 0xab
	l.publish(t, 2, wrong)
	v = l.until(t, Default, 10*time.Second, "Untrusted", untrusted)
	if v.OK() {
		t.Errorf("wrong record: %v is OK; want a failure", v)
	}

	l.publish(t, 2)
	l.until(t, Default, 10*time.Second, "no TLSA records found", func(v Verdict) bool { return v.NoTLSA && v.OK() })
}

// TestJudgeCaches proves the resolver caches: after the record is replaced
// by a wrong one at both servers, the judge still verifies against the
// cached RRset, and fails only once its TTL has run out since it was
// cached.
func TestJudgeCaches(t *testing.T) {
	t.Parallel()
	l := startLab(t)
	const ttl = 8
	l.publish(t, ttl, l.ecd)
	first := l.j.Check(t.Context(), host, l.pf.Port, ECDSA)
	if !verified(first) {
		t.Fatalf("first judge run: %v; want Verified\n%s", first, first.Output)
	}
	wrong := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	l.publish(t, ttl, wrong)
	for _, s := range []string{l.bind.Primary, l.bind.Secondary} {
		if got := direct(t, s, l.owner); got != wrong.String() {
			t.Fatalf("%s serves %q; want only the wrong record", s, got)
		}
	}
	cached := l.j.Check(t.Context(), host, l.pf.Port, ECDSA)
	if !verified(cached) {
		t.Fatalf("right after the replacement (%.1f s after the RRset was cached, TTL %d s): %v; want Verified from the cache\n%s",
			time.Since(first.At).Seconds(), ttl, cached, cached.Output)
	}
	flip := l.until(t, ECDSA, 2*ttl*time.Second, "Untrusted", untrusted)
	// The resolver cached the RRset during the first run; it may serve the
	// new one only ttl seconds later.
	if end := flip.At.Add(flip.Took); end.Before(first.At.Add(ttl * time.Second)) {
		t.Errorf("the judge saw the new RRset %.1f s after the old was cached; want no earlier than the TTL, %d s", end.Sub(first.At).Seconds(), ttl)
	}
	t.Logf("cached: verified %.1f s after caching; new RRset seen %.1f s after caching (TTL %d s)",
		cached.At.Sub(first.At).Seconds(), flip.At.Sub(first.At).Seconds(), ttl)
}

// direct asks server for owner's TLSA RRset and returns it as text.
func direct(t *testing.T, server, owner string) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(owner, dns.TypeTLSA)
	q.RecursionDesired = false
	m, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, server)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range m.Answer {
		if x, ok := rr.(*dns.TLSA); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", x.Usage, x.Selector, x.MatchingType, strings.ToLower(x.Certificate)))
		}
	}
	return strings.Join(out, ", ")
}

// TestSampler: a sampler over both algorithms counts Verified samples and
// no failures while the record matches, then reports failures with a
// timeline naming the servers' RRset once the record is wrong.
func TestSampler(t *testing.T) {
	t.Parallel()
	l := startLab(t)
	l.publish(t, 1, l.rsa, l.ecd)
	l.until(t, Default, 10*time.Second, "Verified", verified)
	opts := SamplerOptions{
		Targets:  []Target{{host, l.pf.Port, RSA}, {host, l.pf.Port, ECDSA}},
		Interval: 300 * time.Millisecond,
		Servers:  []string{l.bind.Primary, l.bind.Secondary},
	}
	s := l.j.StartSampler(t.Context(), opts)
	time.Sleep(2 * time.Second)
	rep := s.Stop()
	if rep.Failed() || rep.Samples < 4 || rep.DNSSamples < 3 {
		t.Fatalf("good record: %s; want ≥ 4 samples, ≥ 3 DNS rounds, no failures\n%s", rep.Summary(), rep.Timeline)
	}
	if again := s.Stop(); again.Samples != rep.Samples {
		t.Errorf("second Stop: %d samples; want the same report (%d)", again.Samples, rep.Samples)
	}
	t.Logf("good record: %s", rep.Summary())

	s = l.j.StartSampler(t.Context(), opts)
	l.publish(t, 1, l.rsa)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		s.mu.Lock()
		n := len(s.failures)
		s.mu.Unlock()
		if n > 0 {
			break
		}
	}
	rep = s.Stop()
	if !rep.Failed() {
		t.Fatalf("only the RSA record: no failure; want the ECDSA target to fail\n%s", rep.Timeline)
	}
	for _, f := range rep.Failures {
		if f.Alg != ECDSA || !f.Untrusted {
			t.Errorf("failure %v; want only ECDSA Untrusted", f)
		}
	}
	for _, want := range []string{"dns   " + l.bind.Secondary, "resolver " + l.r.Addr + " now: TLSA " + l.owner, "num=65", "ecdsa: UNTRUSTED"} {
		if !strings.Contains(rep.Timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, rep.Timeline)
		}
	}
	t.Logf("wrong record: %s", rep.Summary())
}

// TestResolverScope: the lab resolver answers only the lab zone (any other
// name is REFUSED without a query leaving loopback), validated, from both
// authoritative servers.
func TestResolverScope(t *testing.T) {
	t.Parallel()
	l := startLab(t)
	for _, name := range []string{"www.example.com.", "other.test.", "."} {
		m, err := l.r.Query(context.Background(), name, dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if m.Rcode != dns.RcodeRefused {
			t.Errorf("%s through the lab resolver: rcode %s; want REFUSED", name, dns.RcodeToString[m.Rcode])
		}
	}
	m, err := l.r.Query(context.Background(), "mail."+bindlab.DefaultZone, dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeSuccess || !m.AuthenticatedData || len(m.Answer) == 0 {
		t.Fatalf("mail.%s A through the lab resolver: %v %v; want a validated answer", bindlab.DefaultZone, m, err)
	}
	// The stub lists both servers: distinct names (no cache hits) reach
	// each of them, and with the secondary stopped the primary answers.
	var script strings.Builder
	for i := 1; i <= 16; i++ {
		fmt.Fprintf(&script, "update add _%d._tcp.%s. 60 IN TLSA %s\n", i, host, l.ecd)
	}
	l.bind.Nsupdate(t, script.String())
	l.bind.WaitSerial(t, l.bind.Secondary, bindlab.DefaultZone, l.bind.Serial(t, l.bind.Primary, bindlab.DefaultZone), 10*time.Second)
	before := map[string]uint64{}
	for _, role := range []string{"primary", "secondary"} {
		before[role] = l.bind.Counters(t, role).Queries["TLSA"]
	}
	for i := 1; i <= 12; i++ {
		m, err := l.r.Query(context.Background(), fmt.Sprintf("_%d._tcp.%s.", i, host), dns.TypeTLSA)
		if err != nil || !m.AuthenticatedData || len(m.Answer) == 0 {
			t.Fatalf("TLSA _%d._tcp.%s through the resolver: %v %v; want a validated answer", i, host, m, err)
		}
	}
	for _, role := range []string{"primary", "secondary"} {
		if got := l.bind.Counters(t, role).Queries["TLSA"] - before[role]; got == 0 {
			t.Errorf("12 uncached TLSA queries through the resolver: none reached the %s; want both servers asked", role)
		}
	}
	l.bind.StopSecondary(t)
	for i := 13; i <= 16; i++ {
		m, err := l.r.Query(context.Background(), fmt.Sprintf("_%d._tcp.%s.", i, host), dns.TypeTLSA)
		if err != nil || !m.AuthenticatedData || len(m.Answer) == 0 {
			t.Fatalf("TLSA _%d._tcp.%s with the secondary stopped: %v %v; want the primary's validated answer", i, host, m, err)
		}
	}

	if b, err := os.ReadFile(l.r.ResolvConf); err != nil || string(b) != "nameserver "+l.r.Addr+"\n" {
		t.Errorf("ResolvConf %s holds %q (%v)", l.r.ResolvConf, b, err)
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); strings.Contains(string(b), l.r.Addr) {
		t.Errorf("the host's /etc/resolv.conf names the lab resolver: %q", b)
	}
}

// TestJudgeCatchesEarlySwitch is the case the judge exists for: the new
// key's record is at both authoritative servers, so a check that asks them
// passes, but Postfix switched before the resolver's cached RRset (without
// the new record) expired: the judge says Untrusted until the TTL runs out.
func TestJudgeCatchesEarlySwitch(t *testing.T) {
	t.Parallel()
	l := startLab(t)
	const ttl = 10
	l.publish(t, ttl, l.ecd)
	first := l.j.Check(t.Context(), host, l.pf.Port, ECDSA)
	if !verified(first) {
		t.Fatalf("before the switch: %v; want Verified\n%s", first, first.Output)
	}
	keyPEM, certPEM := postfixlab.SelfSigned(t, host, false)
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	next, err := tlsa.FromCertificate(c, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.publish(t, ttl, l.ecd, next)
	postfixlab.WriteChain(t, l.pf.ChainFiles[1], keyPEM, certPEM)
	if err := l.pf.Instance.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := l.until(t, ECDSA, 5*time.Second, "the new key presented", func(v Verdict) bool { return v.Key == keyHex(next) })
	if v.Verified || !v.Untrusted {
		t.Fatalf("switched %.1f s after the old RRset was cached (TTL %d s): %v; want Untrusted (the cache lacks the new record)\n%s",
			v.At.Sub(first.At).Seconds(), ttl, v, v.Output)
	}
	for _, s := range []string{l.bind.Primary, l.bind.Secondary} {
		if got := direct(t, s, l.owner); !strings.Contains(got, keyHex(next)) {
			t.Fatalf("%s serves %q; want the new record too", s, got)
		}
	}
	ok := l.until(t, ECDSA, 3*ttl*time.Second, "Verified once the cache expired", verified)
	t.Logf("early switch: Untrusted at %.1f s after caching, Verified again at %.1f s (TTL %d s)",
		v.At.Sub(first.At).Seconds(), ok.At.Sub(first.At).Seconds(), ttl)
}
