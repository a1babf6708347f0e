package config

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestIsHostLabelIsTheRegexp: isHostLabel answers as the regexp it
// replaced, `^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`, for hand-picked
// labels (edges: one octet, hyphens first, last and doubled, xn--, bytes
// beside the allowed ranges, non-ASCII) and 200,000 random ones.
func TestIsHostLabelIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	labels := []string{"", "a", "Z", "0", "-", "a-", "-a", "a-b", "a--b", "xn--bcher-kva", "mail", "MX1",
		"a_b", "a.b", "a b", "a/", "@", "[", "`", "{", ":", "a\n", "\x00", "bücher", "h00042", "0-0", "--", "a-9"}
	for _, l := range labels {
		if got, want := isHostLabel(l), re.MatchString(l); got != want {
			t.Errorf("isHostLabel(%q) = %v, the regexp says %v", l, got, want)
		}
	}
	alphabet := []byte("aZ09-_.-/:@[`{\x7f\xc3")
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := isHostLabel(string(b)), re.MatchString(string(b)); got != want {
			t.Fatalf("isHostLabel(%q) = %v, the regexp says %v", b, got, want)
		}
	}
}
