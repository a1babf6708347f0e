package dnsupdate

import (
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
)

// TestSameView against real BIND: one view answers signed and unsigned
// queries alike (true, and the unsigned read learns the zone); with views
// chosen by the key the unsigned copy (serial 1000) differs: false, naming
// both serials, the unsigned read's zone forgotten, and the unsigned read
// sees the copy's record where the signed read sees none.
func TestSameView(t *testing.T) {
	t.Parallel()
	owner := "_25._tcp.mail.example.test."
	for _, tc := range []struct {
		name string
		view string
		same bool
	}{
		{"one view", "", true},
		{"two views", "_25._tcp.mail\tIN TLSA 3 1 1 " + strings.Repeat("ab", 32), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := bindlab.Start(t, bindlab.Options{UnsignedView: tc.view})
			p := labProvider(t, l)
			zone, urrs, err := p.UnsignedZoneRecords(t.Context(), owner)
			if err != nil || zone != "example.test." {
				t.Fatalf("UnsignedZoneRecords: %q, %v; want zone example.test.", zone, err)
			}
			srrs, err := p.Records(t.Context(), owner)
			if err != nil {
				t.Fatal(err)
			}
			if tc.same != (len(urrs) == len(srrs)) {
				t.Errorf("unsigned read %v, signed read %v", urrs, srrs)
			}
			same, why := p.SameView(t.Context(), "example.test.")
			if same != tc.same {
				t.Fatalf("SameView = %t (%s), want %t", same, why, tc.same)
			}
			p.mu.Lock()
			_, cached := p.zones[owner]
			p.mu.Unlock()
			if same {
				if why != "" || !cached {
					t.Errorf("same view: why %q, zone cached %t; want \"\" and true", why, cached)
				}
				return
			}
			if !strings.Contains(why, "serial 1000") || cached {
				t.Errorf("views differ: why %q (want both serials named), zone still cached %t", why, cached)
			}
		})
	}
}
