package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// benchDNS returns the DNS state after a publish of n owners, 100 per
// lineage, through provider "lab"; with seen, every record also first seen
// on two servers (as after the propagation check).
func benchDNS(n int, seen bool) *DNSState {
	d := &DNSState{Owned: map[string][]string{}, Seen: &propagate.Seen{}}
	if seen {
		d.Seen.Owners = map[string]map[string]map[string]time.Time{}
	}
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 123456789, time.UTC)
	for i := range n {
		o := fmt.Sprintf("_25._tcp.h%05d.z0.bench.test.", i)
		r := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{byte(i / 100)}, 32)}
		d.own(o, r, "lab")
		d.noteLineages(o, []string{fmt.Sprintf("l%03d", i/100)})
		if seen {
			d.Seen.Owners[o] = map[string]map[string]time.Time{r.String(): {"127.0.0.1:53": t0, "127.0.0.2:53": t0.Add(time.Second)}}
		}
	}
	return d
}

// BenchmarkSaveDNS5000 is the save of dns.json a publish of 5,000 new
// owners does (the state changed: it is encoded and written, and the copy
// saveDNS compares later saves with is taken).
func BenchmarkSaveDNS5000(b *testing.B) {
	for _, seen := range []bool{false, true} {
		b.Run(fmt.Sprintf("seen=%v", seen), func(b *testing.B) {
			dir := b.TempDir()
			e := &Engine{Store: &state.Store{Dir: dir}}
			d := benchDNS(5000, seen)
			for b.Loop() {
				os.Remove(filepath.Join(dir, "dns.json"))
				s := &snapshot{DNS: d}
				if err := e.saveDNS(s); err != nil {
					b.Fatal(err)
				}
			}
			fi, err := os.Stat(filepath.Join(dir, "dns.json"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size()), "file-bytes")
		})
	}
}
