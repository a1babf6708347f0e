package dnsupdate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// splitOwner is owner i of the split tests, in example.test.
func splitOwner(i int) string { return fmt.Sprintf("_25._tcp.h%05d.example.test.", i) }

// adds returns Add changes of record r at owners [from, to).
func adds(from, to int, b byte) []Change {
	var out []Change
	for i := from; i < to; i++ {
		out = append(out, Change{Op: Add, RR: RR{Owner: splitOwner(i), TTL: 300, Record: rec(b)}})
	}
	return out
}

// signedSize packs changes as ONE UPDATE for zone, signed with p's key, and
// returns its wire size: independent of Apply's packing (it uses Pack and
// TsigGenerate, not Len).
func signedSize(t *testing.T, p *RFC2136, zone string, changes []Change) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.Compress = true
	for _, c := range changes {
		if c.Op == Remove {
			m.Remove([]dns.RR{tlsaRR(c.RR)})
		}
	}
	for _, c := range changes {
		if c.Op == Add {
			m.Insert([]dns.RR{tlsaRR(c.RR)})
		}
	}
	addCNAMEGuards(m, changes)
	m.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, p.clock().Unix())
	wire, _, err := dns.TsigGenerate(m, p.Key.Secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return len(wire)
}

// addCNAMEGuards adds to m what Apply sends with every owner that gets an
// addition: the prerequisite "no CNAME RRset" (RFC 2136 §2.4.3), once per
// owner.
func addCNAMEGuards(m *dns.Msg, changes []Change) {
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Op == Add && !seen[c.Owner] {
			seen[c.Owner] = true
			m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: dns.Fqdn(c.Owner), Rrtype: dns.TypeCNAME, Class: dns.ClassINET}}})
		}
	}
}

// boundary returns the largest n such that n additions fit in one signed
// UPDATE, by Pack (not by the code under test).
func boundary(t *testing.T, p *RFC2136) int {
	t.Helper()
	lo, hi := 1, 4000
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if signedSize(t, p, "example.test.", adds(0, mid, 1)) <= dns.MaxMsgSize {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// TestMessagesBoundary: a change set that fits exactly is one message, one
// more change is two, for every TSIG algorithm (the TSIG record's size
// differs) and unsigned; checked against sizes packed independently.
func TestMessagesBoundary(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"hmac-sha1", "hmac-sha256", "hmac-sha512", ""} {
		t.Run(alg, func(t *testing.T) {
			p := &RFC2136{Server: "127.0.0.1:1", Zone: "example.test."}
			if alg != "" {
				k, err := NewTSIGKey("a-long-key-name.example.test.", alg, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
				if err != nil {
					t.Fatal(err)
				}
				p.Key = k
			}
			var n int
			if p.Key != nil {
				n = boundary(t, p)
			} else {
				// Unsigned: the largest n whose packed message fits.
				for n = 500; ; n++ {
					m := new(dns.Msg)
					m.SetUpdate("example.test.")
					m.Compress = true
					for _, c := range adds(0, n+1, 1) {
						m.Insert([]dns.RR{tlsaRR(c.RR)})
					}
					addCNAMEGuards(m, adds(0, n+1, 1))
					if w, _ := m.Pack(); len(w) > dns.MaxMsgSize {
						break
					}
				}
			}
			for _, tc := range []struct{ n, want int }{{n, 1}, {n + 1, 2}, {2 * n, 2}, {2*n + 1, 3}} {
				got, err := p.Messages(t.Context(), adds(0, tc.n, 1))
				if err != nil || got["example.test."] != tc.want {
					t.Errorf("Messages(%d additions): got %v, %v; want %d messages (one message holds %d)", tc.n, got, err, tc.want, n)
				}
			}
			// Removals count too: a full message of additions and as many
			// removals are two messages.
			mixed := append(adds(0, n, 2), removes(n, 2*n, 1)...)
			if got, _ := p.Messages(t.Context(), mixed); got["example.test."] != 2 {
				t.Errorf("Messages(%d changes, adds and removes): got %v, want 2", len(mixed), got)
			}
		})
	}
}

func removes(from, to int, b byte) []Change {
	var out []Change
	for i := from; i < to; i++ {
		out = append(out, Change{Op: Remove, RR: RR{Owner: splitOwner(i), TTL: 300, Record: rec(b)}})
	}
	return out
}

// updateLog is a TCP forwarder between an RFC2136 and a real BIND that
// decodes every UPDATE passing through (the server applies it, the log only
// watches): per message, how many records it adds and removes.
type updateLog struct {
	mu   sync.Mutex
	msgs []updateSeen
}

type updateSeen struct{ adds, removes, prereqs, size int }

func (u *updateLog) seen() []updateSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]updateSeen(nil), u.msgs...)
}

// startUpdateLog listens on 127.0.0.1:0 and forwards each TCP connection to
// server; it returns the address to use instead.
func startUpdateLog(t *testing.T, server string) (string, *updateLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	log := &updateLog{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", server)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(c, s) }()
				for {
					var hdr [2]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
					if _, err := io.ReadFull(c, body); err != nil {
						return
					}
					m := new(dns.Msg)
					if m.Unpack(body) == nil && m.Opcode == dns.OpcodeUpdate {
						var us updateSeen
						us.size, us.prereqs = len(body), len(m.Answer)
						for _, rr := range m.Ns {
							if rr.Header().Class == dns.ClassNONE {
								us.removes++
							} else {
								us.adds++
							}
						}
						log.mu.Lock()
						log.msgs = append(log.msgs, us)
						log.mu.Unlock()
					}
					if _, err := s.Write(append(hdr[:], body...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), log
}

// TestApplySplitsAddsBeforeRemoves publishes, against a real BIND, a change
// set just over one message (two UPDATEs, both accepted, every record
// served), then a replacement of all of them whose additions and removals
// need three messages: every message with an addition goes before every
// message with only removals, each message is within 65535 bytes, the
// server counted exactly the UPDATEs the provider sent, and a rerun sends
// nothing.
func TestApplySplitsAddsBeforeRemoves(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: 300})
	addr, log := startUpdateLog(t, l.Primary)
	p := labProvider(t, l)
	p.Server = addr
	p.Zone = "example.test."
	n := boundary(t, p)
	ctx := t.Context()
	before := l.Counters(t, "primary").Requests["UPDATE"]

	// One message's worth plus one: two UPDATEs.
	first := adds(0, n+1, 1)
	if got, err := p.Messages(ctx, first); err != nil || got["example.test."] != 2 {
		t.Fatalf("Messages(%d additions) = %v, %v; want 2", n+1, got, err)
	}
	if err := p.Apply(ctx, first); err != nil {
		t.Fatalf("Apply(%d additions): %v", n+1, err)
	}
	seen := log.seen()
	if len(seen) != 2 || seen[0].adds+seen[1].adds != n+1 || seen[0].adds != n {
		t.Fatalf("UPDATEs seen: %+v; want 2 carrying %d and 1 additions", seen, n)
	}
	for i := 0; i <= n; i += n / 4 {
		assertServed(t, p, splitOwner(i), rec(1))
	}
	assertServed(t, p, splitOwner(n), rec(1))

	// Replace every record (add 2, remove 1): 2n+2 changes; the additions
	// (each with its owner's "no CNAME" guard) fill more than one message,
	// the removals (no guard) fit beside the last addition: as many
	// messages as Messages says, at least two; removals only after every
	// addition.
	var repl []Change
	for i := 0; i <= n; i++ {
		o := splitOwner(i)
		repl = append(repl,
			Change{Op: Remove, RR: RR{Owner: o, TTL: 300, Record: rec(1)}},
			Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(2)}})
	}
	if err := p.Apply(ctx, repl); err != nil {
		t.Fatalf("Apply(replacement): %v", err)
	}
	seen = log.seen()[2:]
	if len(seen) < 2 {
		t.Fatalf("replacement took %d UPDATEs (%+v), want at least 2", len(seen), seen)
	}
	adds, rms, removalSeen := 0, 0, false
	for i, m := range seen {
		if m.size > dns.MaxMsgSize {
			t.Errorf("UPDATE %d is %d bytes", i+1, m.size)
		}
		if m.removes > 0 {
			removalSeen = true
		}
		if m.adds > 0 && removalSeen && m.removes == 0 {
			t.Errorf("UPDATE %d adds after a message that removed: %+v", i+1, seen)
		}
		if m.adds > 0 && i > 0 && seen[i-1].removes > 0 {
			t.Errorf("UPDATE %d adds after UPDATE %d removed: %+v", i+1, i, seen)
		}
		adds += m.adds
		rms += m.removes
	}
	if adds != n+1 || rms != n+1 {
		t.Errorf("replacement carried %d additions and %d removals, want %d each", adds, rms, n+1)
	}
	for _, i := range []int{0, n / 2, n} {
		assertServed(t, p, splitOwner(i), rec(2))
	}
	if got, want := l.Counters(t, "primary").Requests["UPDATE"]-before, uint64(p.Sent().Updates); got != want || got != uint64(2+len(seen)) {
		t.Errorf("server counted %d UPDATEs, provider sent %d; want %d", got, want, 2+len(seen))
	}

	// The same plan again: Apply is idempotent (records added again and
	// removed again are no-ops), and a Diff of what is served is empty.
	var current []RR
	for i := 0; i <= n; i++ {
		current = append(current, RR{Owner: splitOwner(i), TTL: 300, Record: rec(2)})
	}
	var plan Plan
	for i := 0; i <= n; i++ {
		plan = append(plan, Diff(splitOwner(i), 300, current[i:i+1], []tlsa.Record{rec(2)}, []tlsa.Record{rec(1), rec(2)})...)
	}
	if !plan.Empty() {
		t.Fatalf("rerun plan not empty")
	}
	sent := p.Sent().Updates
	if err := p.Apply(ctx, plan); err != nil || p.Sent().Updates != sent {
		t.Errorf("rerun: %v, %d UPDATEs; want none", err, p.Sent().Updates-sent)
	}
}

// TestApplySplitPrerequisiteFails: with Prerequisites, removals split over
// messages carry their owners' prerequisites; another writer removing a
// kept record at an owner of the last message makes that message fail with
// ErrPrerequisite naming its number, while the messages before it (all the
// additions) were applied and the owner keeps both records.
func TestApplySplitPrerequisiteFails(t *testing.T) {
	t.Parallel()
	l := bindlab.Start(t, bindlab.Options{TTL: 300})
	p := labProvider(t, l)
	p.Zone = "example.test."
	ctx := t.Context()
	n := 700 // owners: two records each, one to keep and one to remove
	var setup []Change
	for i := 0; i < n; i++ {
		o := splitOwner(i)
		setup = append(setup,
			Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(1)}},
			Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(2)}})
	}
	if err := p.Apply(ctx, setup); err != nil {
		t.Fatal(err)
	}
	var plan []Change
	for i := 0; i < n; i++ {
		o := splitOwner(i)
		plan = append(plan,
			Change{Op: Keep, RR: RR{Owner: o, TTL: 300, Record: rec(2)}},
			Change{Op: Remove, RR: RR{Owner: o, TTL: 300, Record: rec(1)}},
			Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(3)}})
	}
	p.Prerequisites = true
	parts, err := p.Messages(ctx, plan)
	if err != nil || parts["example.test."] < 3 {
		t.Fatalf("Messages = %v, %v; want at least 3 for this plan", parts, err)
	}
	last := splitOwner(n - 1)
	sent := 0
	p.beforeUpdate = func(int) {
		sent++
		if sent == parts["example.test."] {
			// Right before the last message: the kept record goes.
			l.Nsupdate(t, "update delete "+last+" IN TLSA "+rec(2).String()+"\nsend\n")
		}
	}
	err = p.Apply(ctx, plan)
	var ue *UpdateError
	if !errors.Is(err, ErrPrerequisite) || !errors.As(err, &ue) || ue.Part != parts["example.test."] || !strings.Contains(err.Error(), fmt.Sprintf("message %d of %d", ue.Part, ue.Part)) {
		t.Fatalf("Apply: got %v, want ErrPrerequisite in message %d", err, parts["example.test."])
	}
	// Every addition went out (adds first); the last owner keeps the
	// record its removal was to leave alone... and the removed one.
	assertServed(t, p, splitOwner(0), rec(2), rec(3))
	assertServed(t, p, last, rec(1), rec(3))
}
