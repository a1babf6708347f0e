package propagate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	dnskey = "example.test. 300 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
	soaSig = "example.test. 3600 IN RRSIG SOA 13 2 3600 20300101000000 20200101000000 12345 example.test. mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
	ds     = "example.test. 300 IN DS 12345 13 2 " + hexA
)

func TestDNSSEC(t *testing.T) {
	signed := twoNS(1, dnskey, soaSig)
	for _, tc := range []struct {
		name      string
		primary   []string
		resolver  []string // nil: no resolver configured
		ad        bool
		rcode     int // resolver RCODE
		signed    bool
		dsState   State
		validated State
		warning   string // substring; "" means no warning
		explain   string // substring of the explanation
		requireIs error  // what RequireDNSSEC returns
	}{
		{
			name: "unsigned", primary: twoNS(1),
			dsState: Unknown, validated: Unknown,
			warning: WarningUnsigned, explain: "serves no DNSKEY", requireIs: ErrUnsigned,
		},
		{
			name: "DNSKEY but SOA not signed", primary: twoNS(1, dnskey),
			dsState: Unknown, validated: Unknown,
			warning: WarningUnsigned, explain: "1 DNSKEY records but no RRSIG over the SOA", requireIs: ErrUnsigned,
		},
		{
			name: "signed, no resolver", primary: signed, signed: true,
			dsState: Unknown, validated: Unknown, explain: "no resolver configured",
		},
		{
			name: "signed, DS, validated", primary: signed, resolver: append(zone(1, soaSig), ds), ad: true, signed: true,
			dsState: Yes, validated: Yes, explain: "validates it (AD bit)",
		},
		{
			name: "signed, DS, resolver does not validate", primary: signed, resolver: append(zone(1, soaSig), ds), signed: true,
			dsState: Yes, validated: No, warning: "does not validate", explain: "does not set the AD bit", requireIs: ErrInsecure,
		},
		{
			name: "signed, no DS, validated through a local trust anchor", primary: signed, resolver: zone(1, soaSig), ad: true, signed: true,
			dsState: No, validated: Yes, warning: "parent zone has no DS", explain: "parent has no DS",
		},
		{
			name: "signed, resolver fails", primary: signed, resolver: zone(1), rcode: dns.RcodeServerFailure, signed: true,
			dsState: Unknown, validated: Unknown, explain: "DS unknown: resolver",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := serve(t, map[string]dns.Handler{"127.0.0.1": newFake(t, tc.primary...)})
			c := &Checker{Primary: addr("127.0.0.1", port), Timeout: time.Second}
			if tc.resolver != nil {
				r := newFake(t, tc.resolver...)
				r.recursive, r.ad, r.rcode = true, tc.ad, tc.rcode
				c.Resolver = addr("127.0.0.6", serve(t, map[string]dns.Handler{"127.0.0.6": r}))
			}
			st, err := c.DNSSEC(t.Context(), "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if st.Zone != "example.test." || st.Signed != tc.signed || st.DS != tc.dsState || st.Validated != tc.validated {
				t.Errorf("got zone %q signed=%v ds=%s validated=%s, want example.test. %v %s %s", st.Zone, st.Signed, st.DS, st.Validated, tc.signed, tc.dsState, tc.validated)
			}
			if (tc.warning == "") != (st.Warning == "") || !strings.Contains(st.Warning, tc.warning) {
				t.Errorf("warning: got %q, want %q", st.Warning, tc.warning)
			}
			if !strings.Contains(st.Explanation, tc.explain) {
				t.Errorf("explanation: got %q, want it to contain %q", st.Explanation, tc.explain)
			}

			c.RequireDNSSEC = true
			st2, err := c.DNSSEC(t.Context(), "example.test.")
			if !errors.Is(err, tc.requireIs) || (tc.requireIs == nil) != (err == nil) {
				t.Errorf("RequireDNSSEC: got error %v, want %v", err, tc.requireIs)
			}
			if st2.Signed != st.Signed || st2.Warning != st.Warning {
				t.Errorf("RequireDNSSEC changed the status: got %+v, want %+v", st2, st)
			}
		})
	}
}

func TestDNSSECPrimaryFailure(t *testing.T) {
	c := &Checker{Primary: addr("127.0.0.1", closedPort(t)), Timeout: 200 * time.Millisecond}
	if _, err := c.DNSSEC(t.Context(), "example.test."); err == nil || !strings.Contains(err.Error(), `"example.test."`) {
		t.Errorf("got %v, want an error naming the zone", err)
	}
}
