package dnsupdate

import (
	"fmt"
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
		g := b.guess(b.units, nil, 100)
		got := cuts(b, 100)
		if len(got) < 2 || g == got[0] {
			t.Errorf("long names after 600: %v: guess %d, messages %v: want a wrong guess and two or more messages", long, g, got)
		}
	}
}
