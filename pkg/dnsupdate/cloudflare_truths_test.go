package dnsupdate

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/cloudflarefake"
	"github.com/danehook/danehook/pkg/tlsa"
)

// spaced splits h into groups of n characters joined by sep: how a record
// pasted from "dig" output (56-character chunks) or typed by hand looks.
func spaced(h string, n int, sep string) string {
	var parts []string
	for len(h) > n {
		parts = append(parts, h[:n])
		h = h[n:]
	}
	return strings.Join(append(parts, h), sep)
}

// A certificate the API serves with white space or in any case is the same
// record: the plan keeps it, an add of it sends nothing, a remove finds it.
// Before, hex.DecodeString failed on the space and every plan at the owner
// aborted with "certificate association data is not hex".
func TestCloudflareCertificateNormalised(t *testing.T) {
	for _, tc := range []struct {
		name string
		cert func(hexLower string) string
	}{
		{"dig chunks", func(h string) string { return spaced(strings.ToUpper(h), 56, " ") }},
		{"pairs lower", func(h string) string { return spaced(h, 2, " ") }},
		{"mixed case tab newline", func(h string) string {
			return strings.ToUpper(h[:10]) + "\t" + h[10:40] + "\n " + strings.ToUpper(h[40:])
		}},
		{"upper no space", strings.ToUpper},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := cfSetup(t)
			r := cfKeyRecord(t)
			served := tc.cert(hex.EncodeToString(r.Data))
			f.AddRecord("example.com", cloudflarefake.Record{Name: "_25._tcp.mail", Type: "TLSA", TTL: 3600,
				Usage: 3, Selector: 1, MatchingType: 1, Certificate: served, AsServed: true})
			if got := f.Records("example.com")[0].Certificate; got != served {
				t.Fatalf("fake stored %q, want %q as served", got, served)
			}
			current, err := c.Records(t.Context(), cfOwner)
			if err != nil {
				t.Fatalf("Records with certificate %q: %v", served, err)
			}
			if len(current) != 1 || !current[0].Record.Equal(r) {
				t.Fatalf("got %v, want the one record %s", current, r)
			}
			if plan := Diff(cfOwner, 3600, current, []tlsa.Record{r}, nil); !plan.Empty() {
				t.Fatalf("got plan\n%s\nwant the record kept", plan)
			}
			if err := c.Apply(t.Context(), []Change{cfAdd(cfOwner, r)}); err != nil {
				t.Fatal(err)
			}
			if n := f.Requests("POST"); n != 0 {
				t.Errorf("got %d POST for a record already served, want 0", n)
			}
			if err := c.Apply(t.Context(), []Change{cfRemove(cfOwner, r)}); err != nil {
				t.Fatal(err)
			}
			if n := len(f.Records("example.com")); n != 0 {
				t.Errorf("got %d records after the remove, want 0", n)
			}
		})
	}
}

// Not hex stays an error, spaces or not.
func TestCloudflareCertificateNotHex(t *testing.T) {
	f, c, _ := cfSetup(t)
	f.AddRecord("example.com", cloudflarefake.Record{Name: "_25._tcp.mail", Type: "TLSA", TTL: 3600,
		Usage: 3, Selector: 1, MatchingType: 1, Certificate: "AB CD ZZ", AsServed: true})
	_, err := c.Records(t.Context(), cfOwner)
	if !errors.Is(err, ErrCloudflareRequest) || !strings.Contains(err.Error(), "not hex") {
		t.Fatalf("got %v, want a request error saying the data is not hex", err)
	}
	for _, in := range []string{"", " ", "\t\n"} {
		if _, err := cfDecodeHex(in); err == nil {
			t.Errorf("cfDecodeHex(%q): got nil error, want empty data refused", in)
		}
	}
}

// Timeout bounds each request, whatever the HTTP client's own timeout (30 s
// by default): a slow answer fails within about Timeout per attempt and is
// classed unavailable, with the setting named.
func TestCloudflareTimeoutHonoured(t *testing.T) {
	f, c, sl := cfSetup(t)
	c.Timeout = 200 * time.Millisecond
	c.MaxRetries = 1
	f.DelayNext(5*time.Second, 2)
	start := time.Now()
	_, err := c.Records(t.Context(), cfOwner)
	took := time.Since(start)
	if !errors.Is(err, ErrCloudflareUnavailable) {
		t.Fatalf("got %v, want ErrCloudflareUnavailable", err)
	}
	if !strings.Contains(err.Error(), "200ms timeout") {
		t.Errorf("got %q, want the timeout named", err)
	}
	// Two attempts of 200 ms; the fake would have answered after 5 s each.
	if took > 2*time.Second {
		t.Errorf("took %s, want about 2 × 200ms (the fake delays 5 s)", took)
	}
	if w := sl.got(); len(w) != 1 {
		t.Errorf("got waits %v, want one retry", w)
	}
	if n := f.Requests("GET"); n != 2 {
		t.Errorf("got %d GET, want 2 (one retry)", n)
	}

	// A slow answer inside the timeout succeeds.
	c.Timeout = 3 * time.Second
	f.DelayNext(100*time.Millisecond, 1)
	if _, err := c.Records(t.Context(), cfOwner); err != nil {
		t.Fatalf("got %v with a 100ms delay and a 3s timeout, want success", err)
	}
}

// The default is 30 s per request even when the caller's client has none.
func TestCloudflareTimeoutDefault(t *testing.T) {
	_, c, _ := cfSetup(t)
	if c.Timeout != 0 || cfDefaultTimeout != 30*time.Second {
		t.Fatalf("Timeout %s, default %s: want 0 and 30s", c.Timeout, cfDefaultTimeout)
	}
}
