package dnsupdate

import (
	"fmt"
	"testing"

	"github.com/danehook/danehook/pkg/tlsa"
)

// TestChangeAppendTo: RR and Change print the zone-file line
// "<owner> <ttl> IN TLSA <u> <s> <m> <hex>" (with "+ ", "- " or "= "
// before it) as fmt spells it, whether through String or AppendTo.
func TestChangeAppendTo(t *testing.T) {
	for _, c := range []Change{
		{Op: Add, RR: RR{Owner: "_25._tcp.mail.example.com.", TTL: 300, Record: tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2, 0xfe}}}},
		{Op: Remove, RR: RR{Owner: "_25._tcp.MX.Example.", TTL: 0, Record: tlsa.Record{Usage: 2, Selector: 0, MatchingType: 2, Data: make([]byte, 64)}}},
		{Op: Keep, RR: RR{Owner: "x.", TTL: 4294967295, Record: tlsa.Record{Usage: 255, Selector: 255, MatchingType: 255}}},
	} {
		rr := fmt.Sprintf("%s %d IN TLSA %d %d %d %x", c.Owner, c.TTL, c.Record.Usage, c.Record.Selector, c.Record.MatchingType, c.Record.Data)
		if got := c.RR.String(); got != rr {
			t.Errorf("RR.String() = %q, want %q", got, rr)
		}
		want := map[Op]string{Add: "+ ", Remove: "- ", Keep: "= "}[c.Op] + rr
		if got := c.String(); got != want {
			t.Errorf("Change.String() = %q, want %q", got, want)
		}
		if got := string(c.AppendTo([]byte("  "))); got != "  "+want {
			t.Errorf("Change.AppendTo = %q, want %q", got, "  "+want)
		}
		if got := string(c.RR.AppendTo(nil)); got != rr {
			t.Errorf("RR.AppendTo(nil) = %q, want %q", got, rr)
		}
	}
}
