package dnsupdate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/cloudflarefake"
	"github.com/danehook/danehook/pkg/tlsa"
)

// cfTestToken is distinctive so a leak into any output is easy to spot.
const cfTestToken = "cfTok-SECRET-4f1d9a7c2b"

const cfOwner = "_25._tcp.mail.example.com."

// cfSleeper records the waits the provider asks for and returns at once.
type cfSleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *cfSleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	return ctx.Err()
}

func (s *cfSleeper) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// cfSetup starts a fake with zone example.com and a provider pointed at it.
func cfSetup(t *testing.T) (*cloudflarefake.Fake, *Cloudflare, *cfSleeper) {
	t.Helper()
	f := cloudflarefake.New(t, cfTestToken)
	f.AddZone("example.com")
	s := &cfSleeper{}
	c := &Cloudflare{APIToken: cfTestToken, BaseURL: f.URL, HTTPClient: f.Client(), sleep: s.sleep}
	return f, c, s
}

// cfCert makes a self-signed ECDSA certificate and returns its DER and the
// DER of its SubjectPublicKeyInfo.
func cfCert(t testing.TB) (certDER, spki []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.example.com"},
		DNSNames:     []string{"mail.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err = x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return certDER, spki
}

// cfKeyRecord is the "3 1 1" record of a fresh key.
func cfKeyRecord(t testing.TB) tlsa.Record {
	t.Helper()
	_, spki := cfCert(t)
	sum := sha256.Sum256(spki)
	return tlsa.Record{Usage: tlsa.UsageDANEEE, Selector: tlsa.SelectorSPKI, MatchingType: tlsa.MatchSHA256, Data: sum[:]}
}

func cfAdd(owner string, r tlsa.Record) Change {
	return Change{Op: Add, RR: RR{Owner: owner, TTL: 3600, Record: r}}
}

func cfRemove(owner string, r tlsa.Record) Change {
	return Change{Op: Remove, RR: RR{Owner: owner, TTL: 3600, Record: r}}
}

// cfHas reports whether rrs holds r.
func cfHas(rrs []RR, r tlsa.Record) bool {
	return slices.ContainsFunc(rrs, func(rr RR) bool { return rr.Record.Equal(r) })
}

func TestCloudflareCreateAndList(t *testing.T) {
	f, c, _ := cfSetup(t)
	cur := cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Record.Equal(cur) || got[0].Owner != cfOwner || got[0].TTL != 3600 {
		t.Fatalf("got %v, want one %s", got, RR{Owner: cfOwner, TTL: 3600, Record: cur})
	}
	// What Cloudflare holds: upper-case hex, content derived from data.
	stored := f.Records("example.com")
	wantHex := strings.ToUpper(hex.EncodeToString(cur.Data))
	if len(stored) != 1 || stored[0].Certificate != wantHex || stored[0].Content != "3 1 1 "+wantHex || stored[0].Name != "_25._tcp.mail.example.com" {
		t.Errorf("got stored %+v, want TLSA 3 1 1 %s at _25._tcp.mail.example.com", stored, wantHex)
	}
}

func TestCloudflareRerunSendsNoWrites(t *testing.T) {
	f, c, _ := cfSetup(t)
	old, cur := cfKeyRecord(t), cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, old)}); err != nil {
		t.Fatal(err)
	}
	// danehook owned old and now wants cur.
	current, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	plan := Diff(cfOwner, 3600, current, []tlsa.Record{cur}, []tlsa.Record{old})
	if err := c.Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	posts, deletes := f.Requests("POST"), f.Requests("DELETE")
	if posts != 2 || deletes != 1 {
		t.Fatalf("first run: got %d POST and %d DELETE, want 2 and 1", posts, deletes)
	}

	// The same plan again (a hook rerun after a crash), then a fresh Diff.
	if err := c.Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	current, err = c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	plan2 := Diff(cfOwner, 3600, current, []tlsa.Record{cur}, []tlsa.Record{old})
	if !plan2.Empty() {
		t.Errorf("second Diff: got plan\n%s\nwant nothing to do", plan2)
	}
	if err := c.Apply(t.Context(), plan2); err != nil {
		t.Fatal(err)
	}
	if p, d := f.Requests("POST")-posts, f.Requests("DELETE")-deletes; p != 0 || d != 0 {
		t.Errorf("rerun: got %d POST and %d DELETE, want none", p, d)
	}
	if got, _ := c.Records(t.Context(), cfOwner); len(got) != 1 || !got[0].Record.Equal(cur) {
		t.Errorf("got %v, want only %s", got, cur)
	}
}

func TestCloudflareCurrentNextPair(t *testing.T) {
	f, c, _ := cfSetup(t)
	cur, next := cfKeyRecord(t), cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, cur), cfAdd(cfOwner, next)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !cfHas(got, cur) || !cfHas(got, next) {
		t.Fatalf("got %v, want current and next side by side", got)
	}
	// After the switch: the old current goes, next stays.
	if err := c.Apply(t.Context(), []Change{{Op: Keep, RR: RR{Owner: cfOwner, Record: next}}, cfRemove(cfOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	got, err = c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Record.Equal(next) {
		t.Errorf("got %v, want only next %s", got, next)
	}
	if n := f.Requests("DELETE"); n != 1 {
		t.Errorf("got %d DELETE, want 1", n)
	}
}

func TestCloudflareUpperCaseHexCompare(t *testing.T) {
	f, c, _ := cfSetup(t)
	r := cfKeyRecord(t)
	// Published earlier by hand, in upper case, as the API returns it anyway.
	f.AddRecord("example.com", cloudflarefake.Record{Name: "_25._tcp.mail", Type: "TLSA", TTL: 3600,
		Usage: 3, Selector: 1, MatchingType: 1, Certificate: strings.ToUpper(hex.EncodeToString(r.Data))})
	current, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	plan := Diff(cfOwner, 3600, current, []tlsa.Record{r}, nil)
	if !plan.Empty() {
		t.Fatalf("got plan\n%s\nwant the upper-case record kept as is", plan)
	}
	// An explicit add of the lower-case form is a no-op too.
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, r)}); err != nil {
		t.Fatal(err)
	}
	if n := f.Requests("POST"); n != 0 {
		t.Errorf("got %d POST, want 0", n)
	}
	// And a remove finds it.
	if err := c.Apply(t.Context(), []Change{cfRemove(cfOwner, r)}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Records("example.com")); n != 0 {
		t.Errorf("got %d records left, want 0", n)
	}
}

func TestCloudflareZeroValuesRoundTrip(t *testing.T) {
	f, c, _ := cfSetup(t)
	certDER, _ := cfCert(t)
	sum := sha256.Sum256(certDER)
	records := []tlsa.Record{
		{Usage: 3, Selector: 0, MatchingType: 0, Data: certDER}, // full certificate
		{Usage: 2, Selector: 0, MatchingType: 1, Data: sum[:]},  // trust anchor, certificate hash
	}
	var plan []Change
	for _, r := range records {
		plan = append(plan, cfAdd(cfOwner, r))
	}
	// The fake refuses a TLSA whose data lacks selector or matching_type,
	// so success proves the zeros were sent.
	if err := c.Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	got, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if !cfHas(got, r) {
			t.Errorf("got %v, want %d %d %d … back", got, r.Usage, r.Selector, r.MatchingType)
		}
	}
	for _, s := range f.Records("example.com") {
		if s.Selector != 0 {
			t.Errorf("stored %q: got selector %d, want 0", s.Content, s.Selector)
		}
	}
}

func TestCloudflareOthersSurvive(t *testing.T) {
	f, c, _ := cfSetup(t)
	ours, theirs, next := cfKeyRecord(t), cfKeyRecord(t), cfKeyRecord(t)
	elsewhere := cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, ours)}); err != nil {
		t.Fatal(err)
	}
	f.AddRecord("example.com", cloudflarefake.Record{Name: "_25._tcp.mail", Type: "TLSA", Usage: 3, Selector: 1, MatchingType: 1,
		Certificate: hex.EncodeToString(theirs.Data)})
	f.AddRecord("example.com", cloudflarefake.Record{Name: "_25._tcp.mail", Type: "TXT", Content: `"not a TLSA"`})
	f.AddRecord("example.com", cloudflarefake.Record{Name: "_465._tcp.mail", Type: "TLSA", Usage: 3, Selector: 1, MatchingType: 1,
		Certificate: hex.EncodeToString(elsewhere.Data)})

	current, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(current) != 2 {
		t.Fatalf("got %v, want our record and theirs (TLSA at this owner only)", current)
	}
	plan := Diff(cfOwner, 3600, current, []tlsa.Record{next}, []tlsa.Record{ours})
	if err := c.Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, s := range f.Records("example.com") {
		left = append(left, s.Name+" "+s.Type+" "+s.Content)
	}
	want := []string{
		"_25._tcp.mail.example.com TLSA 3 1 1 " + strings.ToUpper(hex.EncodeToString(theirs.Data)),
		`_25._tcp.mail.example.com TXT "not a TLSA"`,
		"_465._tcp.mail.example.com TLSA 3 1 1 " + strings.ToUpper(hex.EncodeToString(elsewhere.Data)),
		"_25._tcp.mail.example.com TLSA 3 1 1 " + strings.ToUpper(hex.EncodeToString(next.Data)),
	}
	if !slices.Equal(left, want) {
		t.Errorf("got records\n%s\nwant\n%s", strings.Join(left, "\n"), strings.Join(want, "\n"))
	}
}

func TestCloudflareAddsBeforeRemoves(t *testing.T) {
	f, c, _ := cfSetup(t)
	old, cur := cfKeyRecord(t), cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, old)}); err != nil {
		t.Fatal(err)
	}
	before := len(f.Log())
	// The plan lists the remove first; the provider must still publish first.
	if err := c.Apply(t.Context(), []Change{cfRemove(cfOwner, old), cfAdd(cfOwner, cur)}); err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, l := range f.Log()[before:] {
		if m, _, _ := strings.Cut(l, " "); m == "POST" || m == "DELETE" {
			writes = append(writes, m)
		}
	}
	if !slices.Equal(writes, []string{"POST", "DELETE"}) {
		t.Errorf("got writes %v, want [POST DELETE]", writes)
	}
}

func TestCloudflarePartialFailure(t *testing.T) {
	f, c, _ := cfSetup(t)
	old, good := cfKeyRecord(t), cfKeyRecord(t)
	bad := cfKeyRecord(t)
	bad.Usage = 4 // the fake refuses usages above 3 (modelled), which makes this one POST fail
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, old)}); err != nil {
		t.Fatal(err)
	}
	err := c.Apply(t.Context(), []Change{cfRemove(cfOwner, old), cfAdd(cfOwner, good), cfAdd(cfOwner, bad)})
	var ae *CloudflareApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want a *CloudflareApplyError", err)
	}
	if len(ae.Applied) != 1 || !ae.Applied[0].Record.Equal(good) || !ae.Failed.Record.Equal(bad) ||
		len(ae.Pending) != 1 || ae.Pending[0].Op != Remove {
		t.Errorf("got applied %v, failed %v, pending %v; want [+good], +bad, [-old]", ae.Applied, ae.Failed, ae.Pending)
	}
	if !errors.Is(err, ErrCloudflareRequest) {
		t.Errorf("got %v, want class ErrCloudflareRequest", err)
	}
	for _, want := range []string{"applied 1 of 3", "+ " + cfOwner, "usage must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The old record is still published: nothing was removed after the failure.
	got, _ := c.Records(t.Context(), cfOwner)
	if !cfHas(got, old) || !cfHas(got, good) {
		t.Errorf("got %v, want old and good published", got)
	}
	if n := f.Requests("DELETE"); n != 0 {
		t.Errorf("got %d DELETE, want 0", n)
	}
}

func TestCloudflareRetry429ThenSuccess(t *testing.T) {
	f, c, s := cfSetup(t)
	f.FailNext(http.StatusTooManyRequests, "1", 2)
	r := cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, r)}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.got(), []time.Duration{time.Second, time.Second}; !slices.Equal(got, want) {
		t.Errorf("got waits %v, want %v (Retry-After honoured)", got, want)
	}
	if got, _ := c.Records(t.Context(), cfOwner); !cfHas(got, r) {
		t.Errorf("got %v, want %s published", got, r)
	}
}

func TestCloudflare5xxExhausted(t *testing.T) {
	f, c, s := cfSetup(t)
	c.MaxRetries = 2
	f.FailNext(http.StatusServiceUnavailable, "", 10)
	_, err := c.Records(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareUnavailable) {
		t.Fatalf("got %v, want ErrCloudflareUnavailable", err)
	}
	var ce *CloudflareError
	if !errors.As(err, &ce) || ce.Status != 503 || ce.Attempts != 3 {
		t.Errorf("got %#v, want HTTP 503 after 3 attempts", err)
	}
	if n := f.Requests("GET"); n != 3 {
		t.Errorf("got %d requests, want 3", n)
	}
	if n := len(s.got()); n != 2 {
		t.Errorf("got %d waits, want 2", n)
	}
}

func TestCloudflareRetryAfterBeyondBudget(t *testing.T) {
	f, c, s := cfSetup(t)
	f.FailNext(http.StatusTooManyRequests, "300", 1) // the five-minute block
	_, err := c.FindZone(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareUnavailable) || !strings.Contains(err.Error(), "retry budget") {
		t.Fatalf("got %v, want ErrCloudflareUnavailable naming the retry budget", err)
	}
	if n := len(s.got()); n != 0 {
		t.Errorf("got %d waits, want none (failing at once beats a hook killed mid-wait)", n)
	}
}

func TestCloudflareContextCancelDuringWait(t *testing.T) {
	f, c, _ := cfSetup(t)
	c.sleep = nil // the real timer
	f.FailNext(http.StatusTooManyRequests, "30", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Records(ctx, cfOwner)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestCloudflareTransportErrorRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := &cfSleeper{}
	c := &Cloudflare{APIToken: cfTestToken, BaseURL: "http://" + addr + "/client/v4", MaxRetries: 1, sleep: s.sleep}
	_, err = c.FindZone(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareUnavailable) {
		t.Fatalf("got %v, want ErrCloudflareUnavailable", err)
	}
	if n := len(s.got()); n != 1 {
		t.Errorf("got %d waits, want 1", n)
	}
}

func TestCloudflareNonJSONAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	}))
	t.Cleanup(srv.Close)
	s := &cfSleeper{}
	c := &Cloudflare{APIToken: cfTestToken, BaseURL: srv.URL, MaxRetries: 1, sleep: s.sleep}
	_, err := c.FindZone(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareUnavailable) || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Fatalf("got %v, want ErrCloudflareUnavailable quoting the page", err)
	}
}

func TestCloudflareBadToken(t *testing.T) {
	f, _, _ := cfSetup(t)
	const wrong = "cfTok-WRONG-77aa11"
	c := &Cloudflare{APIToken: wrong, BaseURL: f.URL, HTTPClient: f.Client()}
	_, err := c.Records(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareAuth) {
		t.Fatalf("got %v, want ErrCloudflareAuth", err)
	}
	var ce *CloudflareError
	if !errors.As(err, &ce) || ce.Status != 403 || ce.Code != 9109 {
		t.Errorf("got %v, want HTTP 403 code 9109", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error %q contains the token", err)
	}
	if n := f.Requests("GET"); n != 1 {
		t.Errorf("got %d requests, want 1 (auth failures are not retried)", n)
	}

	c = &Cloudflare{BaseURL: f.URL, HTTPClient: f.Client()}
	if _, err := c.Records(t.Context(), cfOwner); !errors.Is(err, ErrCloudflareAuth) {
		t.Errorf("no token: got %v, want ErrCloudflareAuth", err)
	}
	if n := f.Requests("GET"); n != 1 {
		t.Errorf("no token: got %d requests in all, want 1 (nothing sent without a token)", n)
	}
}

func TestCloudflareZoneToken(t *testing.T) {
	f, _, _ := cfSetup(t)
	f.AddToken("cfZoneTok-READ-9")
	c := &Cloudflare{APIToken: cfTestToken, ZoneToken: "cfZoneTok-READ-9", BaseURL: f.URL, HTTPClient: f.Client()}
	if _, err := c.Records(t.Context(), cfOwner); err != nil {
		t.Fatal(err)
	}
	// A bad zone token fails the lookup although the DNS token is good.
	c = &Cloudflare{APIToken: cfTestToken, ZoneToken: "cfZoneTok-BAD-9", BaseURL: f.URL, HTTPClient: f.Client()}
	_, err := c.FindZone(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareAuth) || strings.Contains(err.Error(), "cfZoneTok-BAD-9") {
		t.Errorf("got %v, want ErrCloudflareAuth without the token", err)
	}
}

func TestCloudflareFindZone(t *testing.T) {
	f, _, _ := cfSetup(t)
	f.AddZone("mail.example.net")
	f.AddZone("example.net")
	for _, tc := range []struct {
		name, zone, owner, want string
		wantErr                 error
	}{
		{"apex zone", "", "_25._tcp.mail.example.com.", "example.com.", nil},
		{"longest suffix wins", "", "_25._tcp.mail.example.net.", "mail.example.net.", nil},
		{"no dot, mixed case", "", "_25._TCP.MX.Example.NET", "example.net.", nil},
		{"configured zone", "example.net.", "_25._tcp.mail.example.net.", "example.net.", nil},
		{"outside configured zone", "example.org", "_25._tcp.mail.example.com.", "", ErrCloudflareZone},
		{"configured zone invisible", "example.org", "_25._tcp.mail.example.org.", "", ErrCloudflareZone},
		{"no zone", "", "_25._tcp.mail.example.org.", "", ErrCloudflareZone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cloudflare{APIToken: cfTestToken, Zone: tc.zone, BaseURL: f.URL, HTTPClient: f.Client()}
			got, err := c.FindZone(t.Context(), tc.owner)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %q, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// Zone ids are cached: a second lookup sends nothing.
	c := &Cloudflare{APIToken: cfTestToken, BaseURL: f.URL, HTTPClient: f.Client()}
	if _, err := c.FindZone(t.Context(), cfOwner); err != nil {
		t.Fatal(err)
	}
	n := f.Requests("GET")
	if _, err := c.FindZone(t.Context(), "_465._tcp.mail.example.com."); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindZone(t.Context(), cfOwner); err != nil {
		t.Fatal(err)
	}
	if got := f.Requests("GET") - n; got != 1 {
		// _465._tcp.mail.example.com is a new suffix; the rest is cached.
		t.Errorf("got %d zone lookups after the first call, want 1", got)
	}
}

func TestCloudflarePagination(t *testing.T) {
	f, c, _ := cfSetup(t)
	const n = 250
	want := make([]tlsa.Record, n)
	for i := range n {
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		want[i] = tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: sum[:]}
		f.AddRecord("example.com", cloudflarefake.Record{Name: cfOwner, Type: "TLSA", TTL: 1, Usage: 3, Selector: 1, MatchingType: 1,
			Certificate: hex.EncodeToString(sum[:])})
	}
	got, err := c.Records(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	for i, r := range want {
		if !got[i].Record.Equal(r) || got[i].TTL != 300 {
			t.Fatalf("record %d: got %s, want %s with TTL 300 (automatic)", i, got[i], r)
		}
	}
	var pages int
	for _, l := range f.Log() {
		if strings.Contains(l, "/dns_records?") {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("got %d list requests, want 3 pages of 100", pages)
	}
}

func TestCloudflareStringHidesToken(t *testing.T) {
	c := &Cloudflare{APIToken: cfTestToken, ZoneToken: "cfZoneTok-READ-9", Zone: "example.com"}
	var outs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outs = append(outs, fmt.Sprintf(format, c))
	}
	outs = append(outs, c.String(), c.GoString(), c.LogValue().String())
	for _, o := range outs {
		if strings.Contains(o, cfTestToken) || strings.Contains(o, "cfZoneTok") {
			t.Errorf("output %q contains a token", o)
		}
		if !strings.Contains(o, "token=set") {
			t.Errorf("output %q does not say the token is set", o)
		}
	}
}

func TestCloudflareTokenNeverInErrors(t *testing.T) {
	f, good, _ := cfSetup(t)
	f.AddZone("example.org")
	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Fatal("want an error")
		}
		errs = append(errs, err)
	}
	// Wrong token (the token sent is the secret here).
	bad := &Cloudflare{APIToken: cfTestToken + "x", BaseURL: f.URL, HTTPClient: f.Client()}
	_, err := bad.Records(t.Context(), cfOwner)
	collect(err)
	// Validation error, zone errors, retries exhausted, budget exceeded.
	r := cfKeyRecord(t)
	r.Usage = 9
	collect(good.Apply(t.Context(), []Change{cfAdd(cfOwner, r)}))
	_, err = good.Records(t.Context(), "_25._tcp.mail.example.invalid.")
	collect(err)
	good.MaxRetries = 1
	f.FailNext(http.StatusInternalServerError, "", 2)
	_, err = good.Records(t.Context(), "_25._tcp.mail.example.org.")
	collect(err)
	f.FailNext(http.StatusTooManyRequests, "3600", 1)
	_, err = good.Records(t.Context(), "_25._tcp.mx.example.org.")
	collect(err)
	for _, err := range errs {
		if strings.Contains(err.Error(), cfTestToken) || strings.Contains(fmt.Sprintf("%+v", err), cfTestToken) {
			t.Errorf("error %q contains the token", err)
		}
	}
}

func TestCloudflareRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", -1},
		{"1", time.Second},
		{" 2 ", 2 * time.Second},
		{"0", 0},
		{"-1", -1},
		{"soon", -1},
		{"99999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := cfRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("cfRetryAfter(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
	for n := 1; n < 20; n++ {
		if d := cfBackoff(n); d <= 0 || d > cfBackoffCap {
			t.Errorf("cfBackoff(%d): got %v, want in (0, %v]", n, d, cfBackoffCap)
		}
	}
}

// A POST or DELETE whose answer was lost is retried; the API then answers
// 81058 (already there) or 81044 (already gone), which mean success.
func TestCloudflareLostAnswers(t *testing.T) {
	f, c, _ := cfSetup(t)
	r := cfKeyRecord(t)
	if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, r)}); err != nil {
		t.Fatal(err)
	}
	z, err := c.findZone(t.Context(), cfOwner)
	if err != nil {
		t.Fatal(err)
	}
	// Add as if the listing had not seen the record.
	if err := c.add(t.Context(), z, nil, cfAdd(cfOwner, r)); err != nil {
		t.Errorf("add of an existing record: got %v, want nil (81058 is success)", err)
	}
	// Remove with a listing that names a record id already deleted.
	stale := []cfServed{{ID: "0123456789abcdef0123456789abcdef", RR: RR{Owner: cfOwner, Record: r}}}
	if err := c.remove(t.Context(), z, stale, cfRemove(cfOwner, r)); err != nil {
		t.Errorf("remove of a gone record: got %v, want nil (81044 is success)", err)
	}
	if p, d := f.Requests("POST"), f.Requests("DELETE"); p != 2 || d != 1 {
		t.Errorf("got %d POST and %d DELETE, want 2 and 1", p, d)
	}
}
