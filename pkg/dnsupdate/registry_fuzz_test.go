package dnsupdate

import "testing"

// FuzzParseClaim checks the parser of ownership registry TXT strings: it
// never panics, and what it accepts prints back (Text) to a string it
// parses to the same claim.
func FuzzParseClaim(f *testing.F) {
	for _, s := range []string{
		"danehook-claim host=mx1 tlsa=3 1 1 6aec9c8c457174fa96cae097b7280aeaf049e8eb150db52fc278a7b1e71e1244",
		"danehook-claim host=mx1.example tlsa=2 1 1 AB",
		"danehook-claim host= tlsa=3 1 1 ab",
		"danehook-claim host=a b tlsa=3 1 1 ab",
		"v=spf1 -all",
		"danehook-claim host=mx1 tlsa=3 1 1 zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseClaim("_25._tcp.mail.example.test.", s)
		if !ok {
			return
		}
		again, ok := ParseClaim("_25._tcp.mail.example.test.", c.Text())
		if !ok || again.Host != c.Host || !again.Record.Equal(c.Record) || again.Owner != c.Owner {
			t.Fatalf("ParseClaim(%q) = %+v; its Text %q parses to %+v, %v", s, c, c.Text(), again, ok)
		}
	})
}
