package tlsa

import (
	"fmt"
	"strings"
	"testing"
)

// TestRecordAppendTo: String and AppendTo give the presentation form
// "U S M <hex>" (RFC 6698 §2.2) exactly as fmt spells it, for every width
// of the numbers and empty, short and long data; AppendTo keeps what b
// held.
func TestRecordAppendTo(t *testing.T) {
	for _, r := range []Record{
		{3, 1, 1, []byte{0x2f, 0xcb, 0x00, 0xff}},
		{0, 0, 0, nil},
		{255, 10, 99, []byte(strings.Repeat("\xab", 64))},
		{2, 0, 2, []byte{0}},
	} {
		want := fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data)
		if got := r.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if got := string(r.AppendTo([]byte("x: "))); got != "x: "+want {
			t.Errorf("AppendTo(\"x: \") = %q, want %q", got, "x: "+want)
		}
	}
}
