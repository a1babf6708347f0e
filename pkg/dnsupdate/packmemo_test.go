package dnsupdate

import (
	"bytes"
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/tlsa"
)

// packChanges returns n 3 1 1 additions in zone z0.bench.test.
func packChanges(n int, ttl uint32) ([]Change, map[string]string) {
	var cs []Change
	zoneOf := map[string]string{}
	for i := range n {
		d := make([]byte, 32)
		d[0], d[1] = byte(i), byte(i>>8)
		o := fmt.Sprintf("_25._tcp.h%05d.z0.bench.test.", i)
		cs = append(cs, Change{Op: Add, RR: RR{Owner: o, TTL: ttl, Record: tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: d}}})
		zoneOf[o] = "z0.bench.test."
	}
	return cs, zoneOf
}

// cuts returns the number of units of each message applyZone's packing of
// additions sends for b, checking each is the most that fit.
func cuts(b *zoneBatch, tsig int) []int {
	var out []int
	for i := 0; i < b.nAdds; {
		k := b.pack(b.units[i:b.nAdds], nil, tsig)
		if k == 0 {
			return append(out, 0)
		}
		if fits := func(n int) bool { return b.msg(b.units[i:i+n], nil).Len()+tsig <= dns.MaxMsgSize }; !fits(k) || i+k < b.nAdds && fits(k+1) {
			panic(fmt.Sprintf("pack at unit %d says %d units fit: fits(%d) = %v, fits(%d) = %v", i, k, k, fits(k), k+1, i+k < b.nAdds && fits(k+1)))
		}
		out = append(out, k)
		i += k
	}
	return out
}

// TestPackMemo: Apply's packing after Messages reuses Messages' answers
// (RFC2136.packs) and they are the ones a fresh packing finds; a batch
// that differs in anything the message is built from is packed anew.
func TestPackMemo(t *testing.T) {
	cs, zoneOf := packChanges(3000, 300)
	p := &RFC2136{}
	bs, zs := p.batches(cs, zoneOf)
	n, err := bs[zs[0]].estimate(p, 100)
	if err != nil || n < 3 {
		t.Fatalf("estimate = %d, %v; want 3 or more messages", n, err)
	}
	if len(p.packs) != 1 {
		t.Fatalf("%d batches remembered, want 1", len(p.packs))
	}
	bs2, _ := p.batches(cs, zoneOf)
	got := cuts(bs2[zs[0]], 100)
	fresh := &RFC2136{}
	bs3, _ := fresh.batches(cs, zoneOf)
	bs3[zs[0]].p = nil // no memo at all
	want := cuts(bs3[zs[0]], 100)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != n {
		t.Fatalf("remembered packing %v, fresh packing %v, estimate %d messages", got, want, n)
	}
	// A larger TTL cannot change the wire size but must not hit the memo;
	// a different TSIG size is a different answer.
	csTTL, _ := packChanges(3000, 3600)
	bs4, _ := p.batches(csTTL, zoneOf)
	if bs4[zs[0]].digest() == bs2[zs[0]].digest() {
		t.Fatal("batches with different TTLs have the same digest")
	}
	bs5, _ := p.batches(cs, zoneOf)
	big := cuts(bs5[zs[0]], 20000)
	if big[0] >= want[0] {
		t.Fatalf("with a 20,000-byte TSIG the first message holds %d units, without %d: the memo ignored the TSIG size", big[0], want[0])
	}
	// A removal's batch is never remembered past its additions.
	rm := append(cs[:10:10], Change{Op: Remove, RR: cs[20].RR})
	q := &RFC2136{}
	bq, zq := q.batches(rm, zoneOf)
	if _, err := bq[zq[0]].estimate(q, 100); err != nil {
		t.Fatal(err)
	}
	for _, m := range q.packs {
		for r := range m {
			if r.to > bq[zq[0]].nAdds {
				t.Fatalf("remembered range %+v crosses into the removals (nAdds %d)", r, bq[zq[0]].nAdds)
			}
		}
	}
}

// BenchmarkPackTwice is the packing a publish of 5,000 additions in one
// zone does: Messages' estimate, then Apply's.
func BenchmarkPackTwice(b *testing.B) {
	cs, zoneOf := packChanges(5000, 300)
	for b.Loop() {
		p := &RFC2136{}
		bs, zs := p.batches(cs, zoneOf)
		if _, err := bs[zs[0]].estimate(p, 100); err != nil {
			b.Fatal(err)
		}
		bs, _ = p.batches(cs, zoneOf)
		cuts(bs[zs[0]], 100)
	}
}

func BenchmarkPackTwiceNoMemo(b *testing.B) {
	cs, zoneOf := packChanges(5000, 300)
	for b.Loop() {
		p := &RFC2136{}
		bs, zs := p.batches(cs, zoneOf)
		bs[zs[0]].p = nil
		if _, err := bs[zs[0]].estimate(p, 100); err != nil {
			b.Fatal(err)
		}
		bs, _ = p.batches(cs, zoneOf)
		bs[zs[0]].p = nil
		cuts(bs[zs[0]], 100)
	}
}

// TestPackGuessWrong: the first search of a zone starts from a guess
// (zoneBatch.guess) measured on the first units; when the later units are
// larger (long owner names) or smaller, the guess is wrong and the search
// still finds the most that fit (cuts checks each message).
func TestPackGuessWrong(t *testing.T) {
	for _, long := range []bool{true, false} {
		cs, zoneOf := packChanges(4000, 300)
		for i := range cs {
			if (i >= 600) == long {
				o := fmt.Sprintf("_25._tcp.%s.h%05d.z0.bench.test.", strings.Repeat("long-label-", 5), i)
				cs[i].Owner = o
				zoneOf[o] = "z0.bench.test."
			}
		}
		p := &RFC2136{}
		bs, zs := p.batches(cs, zoneOf)
		b := bs[zs[0]]
		b.p = nil
		g, _ := b.guess(b.units, nil, 100)
		got := cuts(b, 100)
		if len(got) < 2 || g == got[0] {
			t.Errorf("long names after 600: %v: guess %d, messages %v: want a wrong guess and two or more messages", long, g, got)
		}
	}
}

// TestSearchProvenAnyStart: whatever the search starts from (no hint, a
// hint far too small or too large, a per-unit cost far off) and however
// uneven the units (owner names of 1 to 60 extra bytes, removals of many
// records), the answer fits and one more unit does not, and the sizes it
// measures stay within about twice a bisection's.
func TestSearchProvenAnyStart(t *testing.T) {
	cs, zoneOf := packChanges(3000, 300)
	for i := range cs {
		if n := (i * 7919) % 61; n > 0 {
			o := fmt.Sprintf("_25._tcp.%s.h%05d.z0.bench.test.", strings.Repeat("x", n), i)
			cs[i].Owner = o
			zoneOf[o] = "z0.bench.test."
		}
		if i%97 == 0 {
			cs[i].Op = Remove
		}
	}
	p := &RFC2136{}
	bs, zs := p.batches(cs, zoneOf)
	b := bs[zs[0]]
	b.p = nil
	const tsig = 100
	fits := func(units []unit, n int) bool { return b.msg(units[:n], nil).Len()+tsig <= dns.MaxMsgSize }
	for _, from := range []int{0, b.nAdds - 700, b.nAdds + 5} {
		units := b.units[from:]
		for _, start := range []struct {
			hint int
			per  float64
		}{{0, 0}, {1, 0}, {1, 5000}, {len(units), 0.01}, {len(units) / 2, 91}, {900, 91}, {700, 1e6}, {3, 0.5}} {
			b.hint, b.per, b.sized = start.hint, start.per, 0
			k := b.search(units, nil, tsig)
			if k == 0 || !fits(units, k) || k < len(units) && fits(units, k+1) {
				t.Fatalf("units[%d:] from hint %d per %v: search = %d: fits(%d) = %v, fits(%d) = %v", from, start.hint, start.per, k, k, k > 0 && fits(units, k), k+1, k < len(units) && fits(units, k+1))
			}
			if bound := 2*bits.Len(uint(len(units))) + 4; b.sized > bound {
				t.Errorf("units[%d:] from hint %d per %v: %d sizes measured, more than %d", from, start.hint, start.per, b.sized, bound)
			}
			t.Logf("units[%d:] (%d) from hint %d per %v: %d units fit, %d sizes measured", from, len(units), start.hint, start.per, k, b.sized)
		}
	}
}

// TestBatchMessageAsHelpersBuildIt: the UPDATE msg builds from batches'
// units (their RRs and "no CNAME" prerequisites built once, in arrays) is,
// byte for byte, the message miekg/dns's update helpers build from the
// changes one by one: owners spelt in mixed case and without the final
// dot, several records at one owner, removals beside additions, any slice
// of the units.
func TestBatchMessageAsHelpersBuildIt(t *testing.T) {
	var cs []Change
	zoneOf := map[string]string{}
	for i := range 300 {
		o := fmt.Sprintf("_25._tcp.h%03d.Z0.bench.test", i/3) // three records an owner
		if i%5 == 0 {
			o = strings.ToUpper(o) + "."
		}
		d := make([]byte, 32)
		d[0], d[1] = byte(i), byte(i%7)
		op := Add
		if i%11 == 0 {
			op = Remove
		}
		cs = append(cs, Change{Op: op, RR: RR{Owner: o, TTL: uint32(60 + i), Record: tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: d}}})
		zoneOf[dns.CanonicalName(o)] = "z0.bench.test."
	}
	p := &RFC2136{}
	bs, zs := p.batches(cs, zoneOf)
	b := bs[zs[0]]
	// The reference: what each unit holds, built again with the helpers.
	ref := func(units []unit) *dns.Msg {
		m := new(dns.Msg)
		m.SetUpdate(b.zone)
		m.Compress = true
		for _, u := range units {
			var rrs []dns.RR
			for _, c := range u.changes {
				rrs = append(rrs, tlsaRR(c.RR))
			}
			if u.remove {
				m.Remove(rrs)
			}
		}
		seen := map[string]bool{}
		for _, u := range units {
			if u.remove {
				continue
			}
			var rrs []dns.RR
			for _, c := range u.changes {
				rrs = append(rrs, tlsaRR(c.RR))
			}
			m.Insert(rrs)
			if !seen[u.owner] {
				seen[u.owner] = true
				m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: b.owners[u.owner], Rrtype: dns.TypeCNAME, Class: dns.ClassINET}}})
			}
		}
		return m
	}
	for _, r := range [][2]int{{0, len(b.units)}, {0, b.nAdds}, {1, 2}, {7, 100}, {b.nAdds - 5, len(b.units)}} {
		units := b.units[r[0]:r[1]]
		mg, mr := b.msg(units, nil), ref(units)
		mg.Id, mr.Id = 1, 1 // SetUpdate draws a random ID
		got, err := mg.Pack()
		if err != nil {
			t.Fatal(err)
		}
		want, err := mr.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("units[%d:%d]: the message differs from the helpers' (%d bytes, want %d)", r[0], r[1], len(got), len(want))
		}
		if n := b.msg(units, nil).Len(); n != len(want) {
			t.Fatalf("units[%d:%d]: Len = %d, packed %d", r[0], r[1], n, len(want))
		}
	}
	if b.nAdds != 272 || len(b.units) != 272+28 {
		t.Fatalf("%d addition units of %d, want 272 of 300 (one per removal owner after them)", b.nAdds, len(b.units))
	}
}
