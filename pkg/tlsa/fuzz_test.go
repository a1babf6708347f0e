package tlsa

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// valid and survives a round trip through String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"3 1 1 " + isrgHex,
		"2 1 1 " + strings.ToUpper(isrgHex[:56]) + " " + isrgHex[56:],
		"3 1 2 " + sha512Hex1,
		"3 1 0 3003020100",
		"3 0 0 3000",
		"3 1 1 " + empty256,
		"3 1 2 " + empty512,
		"3 1 1 \"" + isrgHex + "\"",
		"255 255 255 ff",
		"3 1 1 -",
		"",
		"3\t1\n1 " + isrgHex,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid record: %v", s, err)
		}
		back, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(String()) of %q: %v", s, err)
		}
		if !back.Equal(r) {
			t.Fatalf("round trip of %q: got %v, want %v", s, back, r)
		}
	})
}

// FuzzParseRRset checks that ParseRRset never panics and that every record
// it returns is valid, has a valid owner (or none) and reparses to itself.
func FuzzParseRRset(f *testing.F) {
	for _, s := range []string{
		"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex + "\n",
		"; comment\n\n3 1 1 " + isrgHex + "\n2 1 1 " + isrgHex,
		"$ORIGIN example.com.\n$TTL 1h\n_25._tcp.mail IN TLSA 3 1 1 (\n " + isrgHex[:40] + "\n " + isrgHex[40:] + " )\n",
		"_25._tcp.mail.example.com. IN 60 TLSA 3 1 1 " + isrgHex + "\n\t60 IN TLSA 3 1 2 " + sha512Hex1,
		"_25._tcp.mail.example.com. 300 IN RRSIG TLSA 13 5 300 1 2 3 example.com. abc=\n",
		"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + empty256,
		"(\n",
		")",
		"$INCLUDE x",
		"@ IN TLSA 3 1 1 " + isrgHex,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rrs, err := ParseRRset(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, rr := range rrs {
			if err := rr.Validate(); err != nil {
				t.Fatalf("ParseRRset(%q) accepted an invalid record %v: %v", s, rr, err)
			}
			if rr.Owner != "" {
				if _, _, err := ParseOwner(rr.Owner); err != nil || !strings.HasSuffix(rr.Owner, ".") || strings.ToLower(rr.Owner) != rr.Owner {
					t.Fatalf("ParseRRset(%q) returned owner %q: %v", s, rr.Owner, err)
				}
			}
			back, err := ParseRRset(strings.NewReader(rr.String()))
			if err != nil || len(back) != 1 || back[0].Owner != rr.Owner || back[0].TTL != rr.TTL || !back[0].Equal(rr.Record) {
				t.Fatalf("round trip of %q: got %v, %v; want %v", rr.String(), back, err, rr)
			}
		}
	})
}
