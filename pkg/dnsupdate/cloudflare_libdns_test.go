package dnsupdate

// These tests run github.com/libdns/cloudflare v0.2.2 itself against the
// fake, to show each gap that cloudflare.go works around (see the comment at
// the top of that file). If a later libdns/cloudflare fixes one, its test
// fails and the workaround can be reconsidered.

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/cloudflarefake"
	"github.com/libdns/cloudflare"
	"github.com/libdns/libdns"
)

// libdnsCloudflareBase is libdns/cloudflare's hard-coded endpoint (client.go).
const libdnsCloudflareBase = "https://api.cloudflare.com/client/v4"

// cfRedirect is a libdns/cloudflare HTTPClient that sends every request to
// the fake instead: the only way to point that package elsewhere, since its
// base URL is a constant. Anything not aimed at the Cloudflare API is refused,
// so no test traffic leaves the machine.
type cfRedirect struct {
	fake *cloudflarefake.Fake
}

func (r cfRedirect) Do(req *http.Request) (*http.Response, error) {
	rest, ok := strings.CutPrefix(req.URL.String(), libdnsCloudflareBase)
	if !ok {
		return nil, errors.New("cfRedirect: refusing request outside the Cloudflare API: " + req.URL.Redacted())
	}
	u, err := url.Parse(r.fake.URL + rest)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL, out.Host = u, ""
	return r.fake.Client().Do(out)
}

var _ cloudflare.HTTPClient = cfRedirect{}

func cfLibdnsProvider(f *cloudflarefake.Fake) *cloudflare.Provider {
	return &cloudflare.Provider{APIToken: cfTestToken, HTTPClient: cfRedirect{fake: f}}
}

// cfLibdnsTLSA is how a libdns caller expresses a TLSA record: libdns v1.1.0
// has no TLSA type, so it is an opaque RR with presentation-format data.
func cfLibdnsTLSA(name string, r RR) libdns.RR {
	return libdns.RR{Name: name, TTL: time.Duration(r.TTL) * time.Second, Type: "TLSA",
		Data: r.Record.String()}
}

// Gap 1 (and 2): AppendRecords sends TLSA as content only; the API refuses it.
func TestLibdnsCloudflareGapContentOnlyTLSA(t *testing.T) {
	f, c, _ := cfSetup(t)
	rr := RR{Owner: cfOwner, TTL: 3600, Record: cfKeyRecord(t)}
	_, err := cfLibdnsProvider(f).AppendRecords(t.Context(), "example.com.", []libdns.Record{cfLibdnsTLSA("_25._tcp.mail", rr)})
	if err == nil || !strings.Contains(err.Error(), "usage is a required data field") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("libdns/cloudflare AppendRecords: got %v, want HTTP 400 \"usage is a required data field\"", err)
	}
	if n := len(f.Records("example.com")); n != 0 {
		t.Fatalf("got %d records, want 0", n)
	}
	// The same record through the provider, which sends the data object.
	if err := c.Apply(t.Context(), []Change{{Op: Add, RR: rr}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Records(t.Context(), cfOwner); len(got) != 1 || !got[0].Record.Equal(rr.Record) {
		t.Errorf("got %v, want %s", got, rr)
	}
}

// Gap 3: SetRecords keeps one record per name and type.
func TestLibdnsCloudflareGapSetRecords(t *testing.T) {
	f, c, _ := cfSetup(t)
	p := cfLibdnsProvider(f)
	cur, next := cfKeyRecord(t), cfKeyRecord(t)

	// With one record at the owner, SetRecords of the next key rewrites that
	// record (PATCH of its id) instead of adding a second one.
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	curID := f.Records("example.com")[0].ID
	before := len(f.Log())
	_, _ = p.SetRecords(t.Context(), "example.com.", []libdns.Record{cfLibdnsTLSA("_25._tcp.mail", RR{TTL: 3600, Record: next})})
	var patched bool
	for _, l := range f.Log()[before:] {
		if strings.HasPrefix(l, "PATCH ") && strings.HasSuffix(l, "/dns_records/"+curID) {
			patched = true
		}
		if strings.HasPrefix(l, "POST ") {
			t.Errorf("SetRecords sent %q; want no new record", l)
		}
	}
	if !patched {
		t.Errorf("got requests %q, want a PATCH of the current record %s", f.Log()[before:], curID)
	}

	// With the current+next pair published, SetRecords refuses outright.
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, next)}); err != nil {
		t.Fatal(err)
	}
	_, err := p.SetRecords(t.Context(), "example.com.", []libdns.Record{cfLibdnsTLSA("_25._tcp.mail", RR{TTL: 3600, Record: next})})
	if err == nil || !strings.Contains(err.Error(), "more than 1 record") {
		t.Errorf("got %v, want \"unexpectedly found more than 1 record\"", err)
	}
	if got, _ := c.Records(t.Context(), cfOwner); len(got) != 2 {
		t.Errorf("got %v, want the pair untouched", got)
	}
}

// Gap 6: no retries on 429.
func TestLibdnsCloudflareGapNoRetry(t *testing.T) {
	f, c, _ := cfSetup(t)
	f.FailNext(http.StatusTooManyRequests, "1", 1)
	_, err := cfLibdnsProvider(f).GetRecords(t.Context(), "example.com.")
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("libdns/cloudflare GetRecords: got %v, want the 429 returned", err)
	}
	if n := f.Requests("GET"); n != 1 {
		t.Errorf("got %d requests, want 1 (no retry)", n)
	}
	// The provider waits as told and succeeds.
	f.FailNext(http.StatusTooManyRequests, "1", 1)
	if _, err := c.Records(t.Context(), cfOwner); err != nil {
		t.Errorf("provider: got %v, want success after the retry", err)
	}
}

// Gap 4: libdns/cloudflare's DeleteRecords searches by content.exact (with
// our lower-case hex against the API's upper case; the real filter's case
// handling is undocumented) and deletes every match. The provider sends no
// content search and one DELETE, of the id whose decoded bytes match.
func TestCloudflareDeleteByID(t *testing.T) {
	f, c, _ := cfSetup(t)
	cur, next := cfKeyRecord(t), cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, cur), cfAdd(cfOwner, next)}); err != nil {
		t.Fatal(err)
	}
	var curID string
	for _, r := range f.Records("example.com") {
		if r.Certificate == strings.ToUpper(hex.EncodeToString(cur.Data)) {
			curID = r.ID
		}
	}
	before := len(f.Log())
	if err := c.Apply(t.Context(), []Change{cfRemove(cfOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	var deletes []string
	for _, l := range f.Log()[before:] {
		if strings.Contains(l, "content") {
			t.Errorf("sent %q; want no content search", l)
		}
		if strings.HasPrefix(l, "DELETE ") {
			deletes = append(deletes, l)
		}
	}
	if len(deletes) != 1 || !strings.HasSuffix(deletes[0], "/dns_records/"+curID) {
		t.Errorf("got %q, want one DELETE of %s", deletes, curID)
	}
}
