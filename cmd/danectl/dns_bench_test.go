package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// benchPlans returns what `danectl publish` of n new owners in one zone
// prints: one addition per owner, 100 owners per lineage, 7 messages.
func benchPlans(n int) []*deploy.OwnerPlan {
	plans := make([]*deploy.OwnerPlan, n)
	for i := range plans {
		o := fmt.Sprintf("_25._tcp.h%05d.z0.bench.test.", i)
		r := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{byte(i / 100)}, 32)}
		plans[i] = &deploy.OwnerPlan{Owner: o, Zone: "z0.bench.test.", Provider: "lab", TTL: 300,
			Lineages: []string{fmt.Sprintf("l%03d", i/100)}, Desired: []tlsa.Record{r},
			Changes:      dnsupdate.Plan{{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: o, TTL: 300, Record: r}}},
			ZoneMessages: 7}
	}
	return plans
}

// BenchmarkPlanPrint5000 prints the plan of a publish of 5,000 owners
// (10,001 lines) to a file, as danectl does to its standard output.
func BenchmarkPlanPrint5000(b *testing.B) {
	plans := benchPlans(5000)
	f, err := os.Create(filepath.Join(b.TempDir(), "out"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := f.Seek(0, 0); err != nil {
			b.Fatal(err)
		}
		if err := printPlans(f, plans, false, true); err != nil {
			b.Fatal(err)
		}
	}
}
