package dnsupdate

import (
	"errors"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/cloudflarefake"
)

// cfTXT returns the TXT records the fake holds at name in example.com.
func cfTXT(f *cloudflarefake.Fake, name string) []cloudflarefake.Record {
	var out []cloudflarefake.Record
	for _, r := range f.Records("example.com") {
		if r.Type == "TXT" && r.Name == strings.TrimSuffix(name, ".") {
			out = append(out, r)
		}
	}
	return out
}

// TestCloudflareClaims: claims are TXT records at the registry name, sent
// quoted as the API asks; reading accepts quoted and unquoted content and
// ignores other TXT text; adding a claim already there and removing one
// already gone send nothing.
func TestCloudflareClaims(t *testing.T) {
	f, c, _ := cfSetup(t)
	ctx := t.Context()
	mine := Claim{Owner: cfOwner, Host: "mx1", Record: rec(1)}
	next := Claim{Owner: cfOwner, Host: "mx1", Record: rec(2)}
	if err := c.ApplyClaims(ctx, 300, []Claim{mine, next}, nil); err != nil {
		t.Fatal(err)
	}
	txt := cfTXT(f, RegistryName(cfOwner))
	if len(txt) != 2 || !strings.HasPrefix(txt[0].Content, `"danehook-claim host=mx1 tlsa=3 1 1 `) || txt[0].TTL != 300 {
		t.Fatalf("fake holds %+v, want two quoted claim TXT records of TTL 300", txt)
	}
	// Another host's claim created unquoted (the API's older form), and an
	// unrelated TXT record.
	f.AddRecord("example.com", cloudflarefake.Record{Type: "TXT", Name: strings.TrimSuffix(RegistryName(cfOwner), "."), Content: Claim{Host: "mx2", Record: rec(3)}.Text()})
	f.AddRecord("example.com", cloudflarefake.Record{Type: "TXT", Name: strings.TrimSuffix(RegistryName(cfOwner), "."), Content: `"v=spf1 -all"`})
	got, err := c.Claims(ctx, cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Host != "mx1" || got[2].Host != "mx2" || !got[2].Record.Equal(rec(3)) || got[0].Owner != cfOwner {
		t.Fatalf("Claims = %v, want mx1 ×2 and mx2 (the SPF text ignored)", got)
	}
	posts, deletes := f.Requests("POST"), f.Requests("DELETE")
	if err := c.ApplyClaims(ctx, 300, []Claim{mine}, []Claim{{Owner: cfOwner, Host: "mx1", Record: rec(9)}}); err != nil {
		t.Fatal(err)
	}
	if f.Requests("POST") != posts || f.Requests("DELETE") != deletes {
		t.Errorf("a claim already there and one already gone sent %d POST, %d DELETE; want none", f.Requests("POST")-posts, f.Requests("DELETE")-deletes)
	}
	if err := c.ApplyClaims(ctx, 300, nil, []Claim{next}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Claims(ctx, cfOwner); len(got) != 2 || containsClaimText(got, next) {
		t.Fatalf("after removing %v: %v", next, got)
	}
	if n := len(cfTXT(f, RegistryName(cfOwner))); n != 3 {
		t.Errorf("registry holds %d TXT records, want 3 (mx1, mx2, the SPF text kept)", n)
	}
}

func containsClaimText(cs []Claim, c Claim) bool {
	for _, x := range cs {
		if x.Text() == c.Text() {
			return true
		}
	}
	return false
}

// TestCloudflareApplyClaimed: the claims are read again right before the
// removals: a removal another host claims is a Conflict and sends no
// DELETE; this host's own claim does not hold its removal back; additions
// go as usual.
func TestCloudflareApplyClaimed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		claims   []Claim
		conflict bool
	}{
		{name: "nobody claims it: removed"},
		{name: "only my claim: removed", claims: []Claim{{Owner: cfOwner, Host: "mx1", Record: rec(1)}}},
		{name: "mx2 claims it: kept", claims: []Claim{{Owner: cfOwner, Host: "mx2", Record: rec(1)}}, conflict: true},
		{name: "mx2 claims another record: removed", claims: []Claim{{Owner: cfOwner, Host: "mx2", Record: rec(3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := cfSetup(t)
			ctx := t.Context()
			if err := c.Apply(ctx, []Change{{Op: Add, RR: RR{Owner: cfOwner, TTL: 300, Record: rec(1)}}}); err != nil {
				t.Fatal(err)
			}
			if err := c.ApplyClaims(ctx, 300, tc.claims, nil); err != nil {
				t.Fatal(err)
			}
			deletes := f.Requests("DELETE")
			conflicts, err := c.ApplyClaimed(ctx, "mx1", []Change{
				{Op: Add, RR: RR{Owner: cfOwner, TTL: 300, Record: rec(2)}},
				{Op: Remove, RR: RR{Owner: cfOwner, TTL: 300, Record: rec(1)}},
			})
			if err != nil {
				t.Fatalf("ApplyClaimed: %v", err)
			}
			rrs, _ := c.Records(ctx, cfOwner)
			kept := slicesContainsRecord(rrs, 1)
			if kept != tc.conflict || !slicesContainsRecord(rrs, 2) {
				t.Fatalf("served %v: old kept %v, want %v; new added", rrs, kept, tc.conflict)
			}
			if tc.conflict {
				if len(conflicts) != 1 || conflicts[0].Hosts[0] != "mx2" || !strings.Contains(conflicts[0].Reason, RegistryName(cfOwner)) || f.Requests("DELETE") != deletes {
					t.Errorf("conflicts %v, %d DELETE; want one naming mx2 and the registry, no DELETE", conflicts, f.Requests("DELETE")-deletes)
				}
			} else if len(conflicts) != 0 {
				t.Errorf("conflicts %v, want none", conflicts)
			}
		})
	}
}

func slicesContainsRecord(rrs []RR, b byte) bool {
	for _, rr := range rrs {
		if rr.Record.Equal(rec(b)) {
			return true
		}
	}
	return false
}

// TestCloudflareCNAMEOwner: an owner that is a CNAME is reported as an
// *AliasError naming the target (so the engine follows it), Apply never
// POSTs a TLSA beside it, and the fake, like the API, refuses one with
// code 81054.
func TestCloudflareCNAMEOwner(t *testing.T) {
	f, c, _ := cfSetup(t)
	ctx := t.Context()
	f.AddRecord("example.com", cloudflarefake.Record{Type: "CNAME", Name: strings.TrimSuffix(cfOwner, "."), Content: "_dane.example.com"})
	_, err := c.Records(ctx, cfOwner)
	var alias *AliasError
	if !errors.As(err, &alias) || alias.Target != "_dane.example.com." || alias.Owner != cfOwner {
		t.Fatalf("Records at a CNAME = %v, want an *AliasError to _dane.example.com.", err)
	}
	posts := f.Requests("POST")
	err = c.Apply(ctx, []Change{{Op: Add, RR: RR{Owner: cfOwner, TTL: 300, Record: rec(1)}}})
	if !errors.As(err, &alias) || f.Requests("POST") != posts {
		t.Fatalf("Apply beside a CNAME = %v after %d POSTs, want the alias error and none", err, f.Requests("POST")-posts)
	}
	// What the API answers when a TLSA is sent anyway.
	err = c.add(ctx, mustZone(t, c), nil, Change{Op: Add, RR: RR{Owner: cfOwner, TTL: 300, Record: rec(1)}})
	var ce *CloudflareError
	if !errors.As(err, &ce) || ce.Code != 81054 || !errors.Is(err, ErrCloudflareRequest) {
		t.Fatalf("POST beside a CNAME: %v, want HTTP 400 code 81054", err)
	}
	// The target's records are read and changed like any owner's.
	if err := c.Apply(ctx, []Change{{Op: Add, RR: RR{Owner: "_dane.example.com.", TTL: 300, Record: rec(1)}}}); err != nil {
		t.Fatal(err)
	}
	if rrs, err := c.Records(ctx, "_dane.example.com."); err != nil || len(rrs) != 1 {
		t.Fatalf("target: %v, %v", rrs, err)
	}
}

func mustZone(t *testing.T, c *Cloudflare) cfZone {
	t.Helper()
	z, err := c.findZone(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestCloudflareClaimTTL: a TTL the API refuses (below 30 s) becomes
// automatic (1) instead of a failed claim.
func TestCloudflareClaimTTL(t *testing.T) {
	f, c, _ := cfSetup(t)
	for _, tc := range []struct {
		ttl  uint32
		want int
	}{{5, 1}, {300, 300}, {100000, 1}} {
		cl := Claim{Owner: cfOwner, Host: "mx1", Record: rec(byte(tc.ttl))}
		if err := c.ApplyClaims(t.Context(), tc.ttl, []Claim{cl}, nil); err != nil {
			t.Fatalf("ttl %d: %v", tc.ttl, err)
		}
		for _, r := range cfTXT(f, RegistryName(cfOwner)) {
			if strings.Contains(r.Content, cl.Text()) && r.TTL != tc.want {
				t.Errorf("ttl %d: created with %d, want %d", tc.ttl, r.TTL, tc.want)
			}
		}
	}
}
