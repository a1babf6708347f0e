package deploy

import (
	"testing"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestReserveCreatesOnlyWhatAdditionsWould: reserve sizes the owned,
// provider and lineage maps for the additions of a plan, and leaves nil a
// map that recording those additions would not create (no provider named,
// no lineage, nothing added), so that saveDNS sees the same state as
// without it.
func TestReserveCreatesOnlyWhatAdditionsWould(t *testing.T) {
	rec, err := tlsa.Parse("3 1 1 " + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789cdef")
	if err != nil {
		t.Fatal(err)
	}
	add := func(provider string, lineages ...string) []*OwnerPlan {
		o := "_25._tcp.mx.example.com."
		return []*OwnerPlan{{Owner: o, Provider: provider, Lineages: lineages,
			Changes: dnsupdate.Plan{{Op: dnsupdate.Keep, RR: dnsupdate.RR{Owner: o, Record: rec}}, {Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: o, Record: rec}}}}}
	}
	record := func(d *DNSState, plans []*OwnerPlan) {
		for _, p := range plans {
			for _, c := range p.Changes {
				if c.Op == dnsupdate.Add {
					d.own(c.Owner, c.Record, p.Provider)
					d.noteLineages(c.Owner, p.Lineages)
				}
			}
		}
	}
	for _, plans := range [][]*OwnerPlan{add("lab", "mx"), add(""), add("", "mx"), add("lab"), nil,
		{{Owner: "x.", Provider: "lab", Lineages: []string{"mx"}, Changes: dnsupdate.Plan{{Op: dnsupdate.Keep}}}}} {
		for _, start := range []func() *DNSState{
			func() *DNSState { return &DNSState{Owned: map[string][]string{}, Seen: &propagate.Seen{}} },
			func() *DNSState { return &DNSState{} },
			func() *DNSState {
				return &DNSState{Owned: map[string][]string{}, Providers: map[string]string{}, OwnerLineages: map[string][]string{}}
			},
		} {
			with, without := start(), start()
			with.reserve(plans)
			record(with, plans)
			record(without, plans)
			if !with.equal(without) {
				t.Errorf("plans %+v: with reserve %+v, without %+v", plans, with, without)
			}
		}
	}
}
