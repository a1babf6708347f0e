package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// fmtPrintPlans is the text printer as it was written with fmt.Fprintf
// (before printPlans appended each line to one buffer): the reference the
// output must still match, byte for byte.
func fmtPrintPlans(w io.Writer, plans []*deploy.OwnerPlan, applied bool) {
	var zones []string
	zoneMessages := map[string]int{}
	for _, p := range plans {
		if _, ok := zoneMessages[p.Zone]; !ok && p.ZoneMessages > 0 {
			zones = append(zones, p.Zone)
			zoneMessages[p.Zone] = p.ZoneMessages
		}
		verb := "no change"
		adds, removes := 0, 0
		for _, ch := range p.Changes {
			switch ch.Op {
			case dnsupdate.Add:
				adds++
			case dnsupdate.Remove:
				removes++
			}
		}
		if adds+removes > 0 {
			verb = fmt.Sprintf("%d to add, %d to remove", adds, removes)
			if !applied {
				verb += " (not applied)"
			}
			if applied {
				verb = fmt.Sprintf("%d added, %d removed", adds, removes)
			}
		}
		fmt.Fprintf(w, "%s (zone %s, provider %s, lineages %s): %s\n", p.Owner, p.Zone, p.Provider, strings.Join(p.Lineages, ", "), verb)
		for _, ch := range p.Changes {
			fmt.Fprintf(w, "  %s\n", ch)
		}
		for _, h := range p.Held {
			fmt.Fprintf(w, "  held: %s (waiting for 'dane-reload' to verify the new chain)\n", h)
		}
	}
	sort.Strings(zones)
	for _, z := range zones {
		n := zoneMessages[z]
		sent := "to send"
		if applied {
			sent = "sent"
		}
		switch {
		case n == 1:
			fmt.Fprintf(w, "1 UPDATE message for zone %s (%s)\n", z, sent)
		default:
			fmt.Fprintf(w, "%d UPDATE messages for zone %s (%s; the changes do not fit in one DNS message: additions first, then removals)\n", n, z, sent)
		}
	}
}

// TestPrintPlansText: the text plan printPlans writes is, byte for byte,
// what the fmt printer wrote, for additions, removals, keeps and held
// records, owners without changes, several lineages, zones of one and of
// several messages, applied or not; and a failing writer is an error.
func TestPrintPlansText(t *testing.T) {
	rec := func(b byte) tlsa.Record {
		return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{b}, 32)}
	}
	rr := func(o string, ttl uint32, b byte) dnsupdate.RR {
		return dnsupdate.RR{Owner: o, TTL: ttl, Record: rec(b)}
	}
	a, m := "_25._tcp.a.example.com.", "_25._tcp.MX.example.net."
	plans := []*deploy.OwnerPlan{
		{Owner: a, Zone: "example.com.", Provider: "ns1", TTL: 300, Lineages: []string{"mail", "backup"},
			Changes: dnsupdate.Plan{{Op: dnsupdate.Add, RR: rr(a, 300, 1)}, {Op: dnsupdate.Remove, RR: rr(a, 3600, 2)}, {Op: dnsupdate.Keep, RR: rr(a, 60, 3)}},
			Held:    []dnsupdate.RR{rr(a, 300, 4)}, HeldReasons: []string{"a chain Postfix may serve relies on it"}, ZoneMessages: 1},
		{Owner: m, Zone: "example.net.", Provider: "cf", TTL: 60, Lineages: []string{"mx"},
			Changes: dnsupdate.Plan{{Op: dnsupdate.Keep, RR: rr(m, 60, 5)}}},
		{Owner: "_465._tcp.b.example.net.", Zone: "example.net.", Provider: "cf", Lineages: nil, ZoneMessages: 3,
			Changes: dnsupdate.Plan{{Op: dnsupdate.Remove, RR: rr("_465._tcp.b.example.net.", 300, 6)}, {Op: dnsupdate.Remove, RR: rr("_465._tcp.b.example.net.", 300, 7)}}},
	}
	plans = append(plans, benchPlans(120)...)
	for _, applied := range []bool{false, true} {
		var got, want bytes.Buffer
		if err := printPlans(&got, plans, false, applied); err != nil {
			t.Fatal(err)
		}
		fmtPrintPlans(&want, plans, applied)
		if got.String() != want.String() {
			gl, wl := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Fatalf("applied=%v: line %d is\n%q\nwant\n%q", applied, i+1, gl[i], wl[i])
				}
			}
			t.Fatalf("applied=%v: %d lines, want %d", applied, len(gl), len(wl))
		}
		if !strings.Contains(got.String(), "held: ") || !strings.Contains(got.String(), "3 UPDATE messages for zone example.net.") {
			t.Fatalf("the reference plan lacks what it is meant to cover:\n%s", got.String())
		}
	}
	for _, asJSON := range []bool{false, true} {
		if err := printPlans(failWriter{}, plans, asJSON, true); err == nil {
			t.Errorf("json=%v: printPlans to a failing writer returned nil", asJSON)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
