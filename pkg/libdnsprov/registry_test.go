package libdnsprov

import (
	"slices"
	"strings"
	"testing"
)

// The default build compiles in exactly these (the README's table).
func TestDefaultProviders(t *testing.T) {
	for _, n := range []string{"desec", "hetzner", "rfc2136"} {
		s, err := Lookup(n)
		if err != nil || s.New == nil || s.Classify == nil || s.Module == "" || s.Status == "" {
			t.Errorf("Lookup(%q) = %+v, %v; want a complete spec", n, s, err)
		}
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "desec, hetzner, rfc2136") || !strings.Contains(err.Error(), "-tags libdns_route53") {
		t.Errorf("Lookup(nope): %v, want the compiled-in list and the build-tag hint", err)
	}
	if got := Names(); !slices.Contains(got, "desec") || len(got) < 3 {
		t.Errorf("Names() = %v", got)
	}
}

func TestCheckExtra(t *testing.T) {
	s := Spec{Name: "x", Settings: []string{"region"}}
	if err := s.CheckExtra(map[string]any{"region": "eu"}); err != nil {
		t.Error(err)
	}
	if err := s.CheckExtra(map[string]any{"regoin": "eu"}); err == nil || !strings.Contains(err.Error(), `"regoin"`) || !strings.Contains(err.Error(), "region") {
		t.Errorf("got %v, want the misspelt key and the allowed ones", err)
	}
}

func TestClassifiers(t *testing.T) {
	for _, tc := range []struct {
		f    func(error) error
		msg  string
		want string
	}{
		{classifyDesec, `writing RRSets: unexpected status code 401: {"detail":"Invalid token."}`, "provider authentication failed"},
		{classifyDesec, `unexpected status code 400: [{"ttl":["Ensure this value is greater than or equal to 3600."]}]`, "provider rejected the request"},
		{classifyDesec, `retrieving RRSet: unexpected status code 404: {"detail":"Not found."}`, "zone not found at the provider"},
		{classifyDesec, `writing RRSets: waiting for cooldown to end: context deadline exceeded`, "provider unavailable"},
		{classifyHetzner, `Unauthorized (401)`, "provider authentication failed"},
		{classifyHetzner, `Unprocessable Entity (422)`, "provider rejected the request"},
		{classifyHetzner, `Too Many Requests (429)`, "provider unavailable"},
		{classifyRFC2136, `dns: bad authentication`, "provider authentication failed"},
		{classifyRFC2136, `dns response error code "REFUSED" (5)`, "provider rejected the request"},
		{classifyRFC2136, `dns response error code "NOTAUTH" (9)`, "zone not found at the provider"},
		{classifyRFC2136, `dns response error code "SERVFAIL" (2)`, "provider unavailable"},
	} {
		got := tc.f(errString(tc.msg))
		if got == nil || got.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.msg, got, tc.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
