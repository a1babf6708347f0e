package dnsupdate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseCloudflareTLSA checks the parser of the content string Cloudflare
// returns for TLSA ("3 1 1 ABCD…"): it never panics, and what it accepts
// prints back to a string it parses to the same record.
func FuzzParseCloudflareTLSA(f *testing.F) {
	for _, s := range []string{
		"3 1 1 6AEC9C8C457174FA96CAE097B7280AEAF049E8EB150DB52FC278A7B1E71E1244",
		"2 0 1 abcdef01",
		"3 0 0 3082 01 0a",
		"3 1 1",
		"256 1 1 ab",
		"3 1 1 abc",
		"3 1 1 zz",
		"-1 1 1 ab",
		"",
		"\t3\n1 1 AB",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		r, err := parseCloudflareTLSA(content)
		if err != nil {
			return
		}
		if len(r.Data) == 0 {
			t.Fatalf("parseCloudflareTLSA(%q): accepted empty data", content)
		}
		again, err := parseCloudflareTLSA(fmt.Sprintf("%d %d %d %X", r.Usage, r.Selector, r.MatchingType, r.Data))
		if err != nil || !again.Equal(r) {
			t.Fatalf("parseCloudflareTLSA(%q) = %s; reparse of upper-case form: got %s, %v", content, r, again, err)
		}
		if again.String() != strings.ToLower(again.String()) {
			t.Fatalf("String() of %q is not lower case: %s", content, again)
		}
	})
}

// FuzzCloudflareRecordJSON checks the decoding of one record of a list
// answer: never a panic, and an accepted TLSA has data.
func FuzzCloudflareRecordJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"a1","type":"TLSA","name":"_25._tcp.mail.example.com","content":"3 1 1 ABCD","ttl":1,"data":{"usage":3,"selector":1,"matching_type":1,"certificate":"ABCD"}}`,
		`{"id":"a2","type":"TLSA","name":"_25._tcp.mail.example.com","content":"2 0 1 ABCD","ttl":3600,"data":{"usage":2,"selector":0,"matching_type":1,"certificate":"abcd"}}`,
		`{"id":"a3","type":"TLSA","name":"x","content":"3 1 1 AB"}`,
		`{"id":"a4","type":"TLSA","data":{"usage":300,"selector":1,"matching_type":1,"certificate":"AB"}}`,
		`{"id":"a5","type":"TLSA","data":{"usage":3,"selector":-1,"matching_type":1,"certificate":"AB"}}`,
		`{"id":"a6","type":"TLSA","data":{"usage":3,"selector":1,"matching_type":1,"certificate":""},"content":"3 1 1 AB"}`,
		`{"data":null}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r cloudflareRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return
		}
		rec, err := r.tlsa()
		if err != nil {
			return
		}
		if len(rec.Data) == 0 {
			t.Fatalf("%q: accepted a TLSA without data", raw)
		}
		_ = cfTTL(r.TTL)
	})
}
