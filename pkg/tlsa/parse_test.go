package tlsa

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const (
	isrgHex    = "0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3"
	empty256   = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	empty512   = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
	sha512Hex1 = "0102030405060708091011121314151617181920212223242526272829303132" +
		"3334353637383940414243444546474849505152535455565758596061626364"
)

func TestParse(t *testing.T) {
	// dig prints upper case, split into 56-character chunks.
	upper := strings.ToUpper(isrgHex)
	digSplit := upper[:56] + " " + upper[56:]
	tests := []struct {
		in      string
		want    string // String() of the result; "" for an error
		isEmpty bool   // the error wraps ErrEmptyDigest
	}{
		{"3 1 1 " + isrgHex, "3 1 1 " + isrgHex, false},
		{"2 1 1 " + upper, "2 1 1 " + isrgHex, false},
		{"3 1 1 " + digSplit, "3 1 1 " + isrgHex, false},
		{"  3\t1 1\n" + isrgHex[:10] + " " + isrgHex[10:40] + "  " + isrgHex[40:] + "\n", "3 1 1 " + isrgHex, false},
		{"3 1 2 " + sha512Hex1, "3 1 2 " + sha512Hex1, false},
		{"3 1 0 3003020100", "3 1 0 3003020100", false},
		{"0 0 1 " + isrgHex, "0 0 1 " + isrgHex, false},
		{"", "", false},
		{"3 1 1", "", false},
		{"3 1 " + isrgHex, "", false},
		{"4 1 1 " + isrgHex, "", false},
		{"3 2 1 " + isrgHex, "", false},
		{"3 1 3 " + isrgHex, "", false},
		{"256 1 1 " + isrgHex, "", false},
		{"-1 1 1 " + isrgHex, "", false},
		{"+3 1 1 " + isrgHex, "", false},
		{"x 1 1 " + isrgHex, "", false},
		{"3 1 1 \"" + isrgHex + "\"", "", false},
		{"3 1 1 '" + isrgHex + "'", "", false},
		{"3 1 1 " + isrgHex[:63] + "g", "", false},
		{"3 1 1 " + isrgHex[:63], "", false},
		{"3 1 1 " + isrgHex[:62], "", false},
		{"3 1 1 " + isrgHex + "00", "", false},
		{"3 1 2 " + isrgHex, "", false},
		{"3 1 1 0x" + isrgHex[2:], "", false},
		{"3 1 0 00", "", false},
		{"3 1 0 3003020100ff", "", false},
		{"3 1 1 " + empty256, "", true},
		{"3 1 1 " + strings.ToUpper(empty256), "", true},
		{"2 0 1 " + empty256[:56] + " " + empty256[56:], "", true},
		{"3 1 2 " + empty512, "", true},
		{"3 1 0 -", "", true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tt.in, got)
			} else if errors.Is(err, ErrEmptyDigest) != tt.isEmpty {
				t.Errorf("Parse(%q) error %v: errors.Is(ErrEmptyDigest) = %v, want %v", tt.in, err, !tt.isEmpty, tt.isEmpty)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	p := newPKI(t)
	for _, c := range []struct{ u, s, m uint8 }{{3, 1, 1}, {3, 0, 1}, {2, 1, 2}, {2, 0, 0}, {3, 1, 0}} {
		r := mustRecord(t, p.leaf, c.u, c.s, c.m)
		got, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", r, err)
		}
		if !got.Equal(r) {
			t.Errorf("Parse(String()) = %v, want %v", got, r)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%v): %v", r, err)
		}
	}
}

func TestValidate(t *testing.T) {
	empty, _ := hex.DecodeString(empty256)
	for _, r := range []Record{
		{Usage: 3, Selector: 1, MatchingType: 1, Data: empty},
		{Usage: 3, Selector: 1, MatchingType: 1},
		{Usage: 3, Selector: 1, MatchingType: 0},
		{Usage: 5, Selector: 1, MatchingType: 1, Data: make([]byte, 32)},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("Validate(%v) = nil, want an error", r)
		}
	}
}

func TestParseRRset(t *testing.T) {
	isrgSplit := strings.ToUpper(isrgHex[:56]) + " " + strings.ToUpper(isrgHex[56:])
	other := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
		want []string // RR.String() of each record
	}{
		{"empty", "", nil},
		{"comments and blanks", "; nothing\n\n   \n\t; more\n", nil},
		{"dig answer", "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgSplit + "\n",
			[]string{"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex}},
		{"no ttl no class", "_25._tcp.Mail.Example.com. TLSA 3 1 1 " + isrgHex,
			[]string{"_25._tcp.mail.example.com. IN TLSA 3 1 1 " + isrgHex}},
		{"class then ttl", "_25._tcp.mail.example.com. IN 1h TLSA 2 1 1 " + isrgHex,
			[]string{"_25._tcp.mail.example.com. 3600 IN TLSA 2 1 1 " + isrgHex}},
		{"bind units", "_25._tcp.mail.example.com. 1d2h3m4s IN TLSA 3 1 1 " + isrgHex,
			[]string{"_25._tcp.mail.example.com. 93784 IN TLSA 3 1 1 " + isrgHex}},
		{"bare", "3 1 1 " + isrgHex + " ; current key\n2 1 1 " + other,
			[]string{"3 1 1 " + isrgHex, "2 1 1 " + other}},
		{"indented bare", "   3 1 1 " + isrgHex, []string{"3 1 1 " + isrgHex}},
		{"mixed", "3 1 1 " + isrgHex + "\n_465._tcp.mail.example.com. 60 IN TLSA 3 1 1 " + other,
			[]string{"3 1 1 " + isrgHex, "_465._tcp.mail.example.com. 60 IN TLSA 3 1 1 " + other}},
		{"multiline", "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 (\n\t\t" + isrgHex[:44] + "\n\t\t" + isrgHex[44:] + " ) ; comment\n",
			[]string{"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex}},
		{"owner reused", "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex + "\n\t300 IN TLSA 3 1 1 " + other,
			[]string{"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex, "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + other}},
		{"origin and ttl", "$ORIGIN example.com.\n$TTL 600\n_25._tcp.mail IN TLSA 3 1 1 " + isrgHex + "\n",
			[]string{"_25._tcp.mail.example.com. 600 IN TLSA 3 1 1 " + isrgHex}},
		{"other types skipped", "_25._tcp.mail.example.com. 300 IN RRSIG TLSA 13 5 300 20261201000000 20261101000000 12345 example.com. abc=\n" +
			"mail.example.com. 300 IN A 192.0.2.1\n_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex,
			[]string{"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs, err := ParseRRset(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseRRset: %v", err)
			}
			var got []string
			for _, rr := range rrs {
				got = append(got, rr.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseRRsetErrors(t *testing.T) {
	good := "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex + "\n"
	tests := []struct {
		name    string
		in      string
		line    int
		isEmpty bool
	}{
		{"bad hex on line 2", good + "_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 zz\n", 2, false},
		{"empty digest on line 3", good + "\n3 1 1 " + empty256 + "\n", 3, true},
		{"empty sha512", "; c\n_25._tcp.mail.example.com. IN TLSA 3 1 2 " + empty512, 2, true},
		{"quotes", good + good + "_25._tcp.mail.example.com. IN TLSA 3 1 1 \"" + isrgHex + "\"", 3, false},
		{"relative owner", "_25._tcp.mail IN TLSA 3 1 1 " + isrgHex, 1, false},
		{"not a TLSA owner", "mail.example.com. IN TLSA 3 1 1 " + isrgHex, 1, false},
		{"doubled owner", "_25._tcp._25._tcp.mail.example.com. IN TLSA 3 1 1 " + isrgHex, 1, false},
		{"class CH", "_25._tcp.mail.example.com. CH TLSA 3 1 1 " + isrgHex, 1, false},
		{"indented without owner", "\t300 IN TLSA 3 1 1 " + isrgHex, 1, false},
		{"garbage", good + "hello world\n", 2, false},
		{"unbalanced", good + "_25._tcp.mail.example.com. IN TLSA 3 1 1 (\n" + isrgHex + "\n", 2, false},
		{"close without open", isrgHex + " )", 1, false},
		{"nested", "_25._tcp.mail.example.com. IN TLSA ( 3 1 1 (", 1, false},
		{"huge ttl", "_25._tcp.mail.example.com. 99999999999 IN TLSA 3 1 1 " + isrgHex, 1, false},
		{"include", "$INCLUDE /etc/passwd", 1, false},
		{"short", "3 1 1\n", 1, false},
		{"usage 4", "\n\n\n4 1 1 " + isrgHex, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs, err := ParseRRset(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got %v, want an error", rrs)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line != tt.line {
				t.Errorf("error %q: line %d, want %d", err, pe.Line, tt.line)
			}
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error %q does not start with the line", err)
			}
			if errors.Is(err, ErrEmptyDigest) != tt.isEmpty {
				t.Errorf("error %q: errors.Is(ErrEmptyDigest) = %v, want %v", err, !tt.isEmpty, tt.isEmpty)
			}
		})
	}
}

func TestRRString(t *testing.T) {
	r, _ := Parse("3 1 1 " + isrgHex)
	for _, tt := range []struct {
		rr   RR
		want string
	}{
		{RR{Record: r}, "3 1 1 " + isrgHex},
		{RR{Owner: "_25._tcp.a.example.", Record: r}, "_25._tcp.a.example. IN TLSA 3 1 1 " + isrgHex},
		{RR{Owner: "_25._tcp.a.example.", TTL: 60, Record: r}, "_25._tcp.a.example. 60 IN TLSA 3 1 1 " + isrgHex},
	} {
		if got := tt.rr.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestParseRRsetHexLikeType checks a bare line whose hex chunk spells a
// record type ("CAA", "A") is still read as RDATA.
func TestParseRRsetHexLikeType(t *testing.T) {
	in := "3 1 1 CAA " + isrgHex[3:] + "\n3 1 1 A " + isrgHex[1:] + "\n"
	rrs, err := ParseRRset(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseRRset: %v", err)
	}
	if len(rrs) != 2 {
		t.Fatalf("got %d records, want 2", len(rrs))
	}
	if got := hex.EncodeToString(rrs[0].Data); got != "caa"+isrgHex[3:] {
		t.Errorf("record 1 data = %s", got)
	}
}

// zoneParse reads in with miekg/dns's zone parser, returning every TLSA
// record as RR.String() prints it, or the parser's error.
func zoneParse(in string) ([]string, error) {
	zp := dns.NewZoneParser(strings.NewReader(in), "", "")
	var out []string
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		t, isTLSA := rr.(*dns.TLSA)
		if !isTLSA {
			continue
		}
		r, err := Parse(fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Certificate))
		if err != nil {
			return nil, err
		}
		out = append(out, RR{Owner: strings.ToLower(t.Hdr.Name), TTL: t.Hdr.Ttl, Record: r}.String())
	}
	return out, zp.Err()
}

// TestZoneParserAgrees checks that ParseRRset and miekg/dns read the same
// records from master-file input (see the decision in parse.go).
func TestZoneParserAgrees(t *testing.T) {
	other := strings.Repeat("ab", 32)
	for _, in := range []string{
		"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + strings.ToUpper(isrgHex[:56]) + " " + isrgHex[56:] + "\n",
		"_25._tcp.Mail.Example.com. IN TLSA 3 1 1 " + isrgHex + "\n",
		"_25._tcp.mail.example.com. IN 1h TLSA 2 1 1 " + isrgHex + "\n",
		"_25._tcp.mail.example.com. 1d2h3m4s IN TLSA 3 1 1 " + isrgHex + "\n",
		"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 (\n\t\t" + isrgHex[:44] + "\n\t\t" + isrgHex[44:] + " ) ; comment\n",
		"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex + "\n\t300 IN TLSA 3 1 1 " + other + "\n",
		"$ORIGIN example.com.\n$TTL 600\n_25._tcp.mail IN TLSA 3 1 1 " + isrgHex + "\n",
		"mail.example.com. 300 IN A 192.0.2.1\n_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 " + isrgHex + "\n",
	} {
		rrs, err := ParseRRset(strings.NewReader(in))
		if err != nil {
			t.Fatalf("ParseRRset(%q): %v", in, err)
		}
		var got []string
		for _, rr := range rrs {
			got = append(got, rr.String())
		}
		want, err := zoneParse(in)
		if err != nil {
			t.Fatalf("dns.NewZoneParser(%q): %v", in, err)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("input %q:\nParseRRset\n%s\nmiekg/dns\n%s", in, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestZoneParserGaps shows each reason of the decision in parse.go; a
// subtest that fails means miekg/dns closed that gap.
func TestZoneParserGaps(t *testing.T) {
	t.Run("bare", func(t *testing.T) {
		in := "3 1 1 " + isrgHex + "\n"
		if _, err := ParseRRset(strings.NewReader(in)); err != nil {
			t.Fatalf("ParseRRset(bare line): %v", err)
		}
		if got, err := zoneParse(in); err == nil {
			t.Errorf("dns.NewZoneParser read a bare RDATA line (%q): reason 1 is gone", got)
		}
	})
	t.Run("line", func(t *testing.T) {
		_, err := zoneParse("_25._tcp.mail.example.com. IN TLSA 3 1 1 " + isrgHex + "\n_25._tcp.mail.example.com IN TLSA 3 1 1 " + isrgHex + "\n")
		var pe *dns.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("dns.NewZoneParser error %v, want a *dns.ParseError", err)
		}
		typ := reflect.TypeOf(*pe)
		for i := 0; i < typ.NumField(); i++ {
			if typ.Field(i).IsExported() {
				t.Errorf("dns.ParseError exports %s: reason 2 may be gone", typ.Field(i).Name)
			}
		}
	})
	t.Run("no ttl", func(t *testing.T) {
		in := "_25._tcp.mail.example.com. TLSA 3 1 1 " + isrgHex + "\n"
		if _, err := ParseRRset(strings.NewReader(in)); err != nil {
			t.Fatalf("ParseRRset(%q): %v", in, err)
		}
		if got, err := zoneParse(in); err == nil {
			t.Errorf("dns.NewZoneParser read a line without TTL and class (%q): reason 4 is gone", got)
		}
	})
	t.Run("lenient", func(t *testing.T) {
		for _, in := range []string{
			"_25._tcp.mail.example.com. IN TLSA 3 1 1 zz\n",
			"_25._tcp.mail.example.com. IN TLSA 9 1 1 " + isrgHex + "\n",
			"_25._tcp.mail.example.com. CH TLSA 3 1 1 " + isrgHex + "\n",
			"$GENERATE 1-2 _25._tcp.m$.example.com. TLSA 3 1 1 " + isrgHex + "\n",
		} {
			if _, err := ParseRRset(strings.NewReader(in)); err == nil {
				t.Errorf("ParseRRset(%q) succeeded, want an error", in)
			}
			zp := dns.NewZoneParser(strings.NewReader(in), "", "")
			if _, ok := zp.Next(); !ok || zp.Err() != nil {
				t.Errorf("dns.NewZoneParser refuses %q (%v): reason 3 is smaller", in, zp.Err())
			}
		}
	})
}
