package dnsupdate

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
)

// The benchmarks publish one 3 1 1 record at each of 1,000 owners spread
// over 10 zones on a bindlab primary, at the level of RFC2136.Apply (the
// test suite runs each once). The comparison of `danectl publish` with
// nsupdate, by wall time and at 10 to 5,000 owners, is
// scripts/bench-dnsupdate.sh (hyperfine).

const benchOwners, benchZones = 1000, 10

func benchLab(b *testing.B) *bindlab.Lab {
	zones := make([]string, benchZones)
	for i := range zones {
		zones[i] = fmt.Sprintf("z%d.bench.test.", i)
	}
	return bindlab.Start(b, bindlab.Options{Zones: zones, TTL: 300})
}

// benchChanges returns count Add changes of run n: owner i in zone i%10.
func benchChanges(n, count int) []Change {
	out := make([]Change, count)
	for i := range out {
		o := fmt.Sprintf("_25._tcp.h%d-r%d.z%d.bench.test.", i, n, i%benchZones)
		out[i] = Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(byte(i))}}
	}
	return out
}

// updatesOnServer returns the primary's count of UPDATE requests.
func updatesOnServer(b *testing.B, l *bindlab.Lab) uint64 {
	return l.Counters(b, "primary").Requests["UPDATE"]
}

// BenchmarkPublish1000Owners publishes 1,000 owners across 10 zones with
// RFC2136.Apply: one UPDATE per zone. "discover" finds each owner's zone
// with an SOA query (one per new owner); "zone-set" uses one provider per
// zone with Zone set, as a configuration naming the zone does.
func BenchmarkPublish1000Owners(b *testing.B) {
	for _, mode := range []string{"discover", "zone-set"} {
		b.Run(mode, func(b *testing.B) {
			l := benchLab(b)
			base := labProvider(b, l)
			providers := map[string]*RFC2136{}
			if mode == "zone-set" {
				for _, z := range l.Zones {
					providers[z] = &RFC2136{Server: l.Primary, Zone: z, Key: base.Key}
				}
			}
			before := updatesOnServer(b, l)
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				changes := benchChanges(n, benchOwners)
				if mode == "discover" {
					if err := base.Apply(b.Context(), changes); err != nil {
						b.Fatal(err)
					}
					continue
				}
				byZone := map[string][]Change{}
				for _, c := range changes {
					z := c.Owner[strings.Index(c.Owner, ".z")+1:]
					byZone[z] = append(byZone[z], c)
				}
				for z, cs := range byZone {
					if err := providers[z].Apply(b.Context(), cs); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			var st Stats
			for _, p := range append([]*RFC2136{base}, values(providers)...) {
				st.Updates += p.Sent().Updates
				st.Queries += p.Sent().Queries
			}
			server := updatesOnServer(b, l) - before
			if server != uint64(st.Updates) {
				b.Fatalf("server counted %d UPDATEs, provider sent %d", server, st.Updates)
			}
			b.ReportMetric(benchOwners, "owners/op")
			b.ReportMetric(float64(st.Updates)/float64(b.N), "updates/op")
			b.ReportMetric(float64(st.Queries)/float64(b.N), "queries/op")
			b.ReportMetric(float64(st.Updates+st.Queries)/float64(b.N), "msgs/op")
		})
	}
}

func values(m map[string]*RFC2136) []*RFC2136 {
	var out []*RFC2136
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// BenchmarkNsupdate1000Owners makes the same change the way a hand-written
// deploy script does: one `nsupdate -k key` process per owner, each with
// server, zone, one update add and send (no SOA query: the zone is given).
// Messages are counted by the server (UPDATE requests). 1,000 processes take
// about a minute, so unless DANEHOOK_BENCH_NSUPDATE_OWNERS says otherwise
// it publishes 50 owners per op; the owners/op metric says how many.
func BenchmarkNsupdate1000Owners(b *testing.B) {
	count := 50
	if v := os.Getenv("DANEHOOK_BENCH_NSUPDATE_OWNERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DANEHOOK_BENCH_NSUPDATE_OWNERS=%q: want a positive integer", v)
		}
		count = n
	}
	l := benchLab(b)
	before := updatesOnServer(b, l)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, c := range benchChanges(n, count) {
			z := c.Owner[strings.Index(c.Owner, ".z")+1:]
			script := fmt.Sprintf("zone %s\nupdate add %s %d IN TLSA %s\nsend\n", z, c.Owner, c.TTL, c.Record)
			if out, err := l.NsupdateKey(l.KeyFile, script); err != nil {
				b.Fatalf("nsupdate: %v: %s", err, out)
			}
		}
	}
	b.StopTimer()
	server := updatesOnServer(b, l) - before
	b.ReportMetric(float64(count), "owners/op")
	b.ReportMetric(float64(server)/float64(b.N), "updates/op")
	b.ReportMetric(float64(server)/float64(b.N), "msgs/op")
}

// BenchmarkMessages5000Owners measures the packing alone: how many UPDATE
// messages 5,000 additions in one zone take (Messages, as `danectl plan`
// and publish ask before Apply packs them again), without a server.
func BenchmarkMessages5000Owners(b *testing.B) {
	key, err := NewTSIGKey("bench.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U=")
	if err != nil {
		b.Fatal(err)
	}
	p := &RFC2136{Server: "127.0.0.1:9", Zone: "z0.bench.test.", Key: key}
	changes := make([]Change, 5000)
	for i := range changes {
		o := fmt.Sprintf("_25._tcp.h%05d.z0.bench.test.", i)
		changes[i] = Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(byte(i))}}
	}
	for b.Loop() {
		n, err := p.Messages(b.Context(), changes)
		if err != nil {
			b.Fatal(err)
		}
		if n["z0.bench.test."] != 7 {
			b.Fatalf("5000 additions take %d messages, want 7", n["z0.bench.test."])
		}
	}
}
