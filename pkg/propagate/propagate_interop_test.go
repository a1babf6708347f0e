package propagate_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/dnslab"
	"github.com/danehook/danehook/internal/knotlab"
	"github.com/danehook/danehook/internal/pdnslab"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
)

// TestInteropObserve runs the propagation check against a signed BIND, Knot
// DNS and PowerDNS primary with a secondary of the same product, each
// started once: a record published with danehook's RFC 2136 client is
// found on both servers (found by NS discovery), with the primary's serial
// and the record's TTL, ages at first sighting + 2×TTL, and is forgotten
// once removed; the zone is seen signed.
func TestInteropObserve(t *testing.T) {
	t.Parallel()
	for _, srv := range []struct {
		name  string
		start func(testing.TB, dnslab.Options) *dnslab.Lab
	}{
		{"BIND", dnslab.StartBIND},
		{"Knot", knotlab.Start},
		{"PowerDNS", pdnslab.Start},
	} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			l := srv.start(t, dnslab.Options{TTL: labTTL, Signed: true})
			key, err := dnsupdate.LoadTSIGKeyFile(l.Key.File)
			if err != nil {
				t.Fatal(err)
			}
			p := &dnsupdate.RFC2136{Server: l.Primary, Key: key, Timeout: 5 * time.Second}
			c := &propagate.Checker{Primary: l.Primary, Port: l.Port, Timeout: 2 * time.Second}
			r := labRecord(t, 0x40)
			change := func(op dnsupdate.Op) uint32 {
				t.Helper()
				if err := p.Apply(t.Context(), dnsupdate.Plan{{Op: op, RR: dnsupdate.RR{Owner: labOwner, TTL: labTTL, Record: r}}}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				serial := l.Serial(t, l.Primary, labZone)
				start := time.Now()
				l.WaitSerial(t, l.Secondary, labZone, serial, 10*time.Second)
				t.Logf("%s: secondary at serial %d %v after the UPDATE", l.Product, serial, time.Since(start).Round(time.Millisecond))
				return serial
			}

			serial := change(dnsupdate.Add)
			obs := observeUntil(t, c, allServe(r))
			var got []string
			for _, s := range obs.Servers {
				got = append(got, s.Name+"="+s.Addr)
				if s.Serial != serial || s.TTL != labTTL {
					t.Errorf("%s: got serial %d TTL %d, want %d %d", s.Addr, s.Serial, s.TTL, serial, labTTL)
				}
			}
			if want := []string{"ns1.example.test.=" + l.Primary, "ns2.example.test.=" + l.Secondary}; !slices.Equal(got, want) {
				t.Fatalf("servers: got %v, want %v", got, want)
			}
			if obs.PrimarySerial != serial || obs.NegativeTTL != labTTL {
				t.Errorf("got primary serial %d, negative TTL %d; want %d %d", obs.PrimarySerial, obs.NegativeTTL, serial, labTTL)
			}
			t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
			var seen propagate.Seen
			seen.Update(obs, t0)
			agedAt := t0.Add(2 * labTTL * time.Second)
			if st := propagate.Age(obs, &seen, r, agedAt.Add(-time.Second)); st.Aged {
				t.Errorf("one second early: got %s, want not aged", st)
			}
			if st := propagate.Age(obs, &seen, r, agedAt); !st.Aged || len(st.Serving) != 2 {
				t.Errorf("at first seen + 2×TTL: got %s (serving %v), want aged on both servers", st, st.Serving)
			}

			change(dnsupdate.Remove)
			obs = observeUntil(t, c, func(o *propagate.Observation) bool {
				return !slices.ContainsFunc(o.Servers, func(s propagate.ServerState) bool { return s.Serves(r) || s.Lagging })
			})
			seen.Update(obs, t0.Add(time.Minute))
			if _, ok := seen.FirstSeen(labOwner, r, l.Primary); ok {
				t.Error("removed record still remembered at the primary")
			}

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c.RequireDNSSEC = true
			st, err := c.DNSSEC(ctx, labZone)
			if err != nil || !st.SOASigned || st.DNSKEYs == 0 || st.Warning != "" {
				t.Errorf("DNSSEC: got %+v, %v; want signed without warning", st, err)
			}
		})
	}
}
