package desecfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func call(t *testing.T, f *Fake, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.URL+"/api/v1"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestAuthAndNotFound(t *testing.T) {
	f := New(t, "tok")
	f.AddDomain("example.com")
	for _, tc := range []struct{ token, path, want string }{
		{"", "/domains/", `{"detail":"Authentication credentials were not provided."}`},
		{"bad", "/domains/", `{"detail":"Invalid token."}`},
		{"tok", "/domains/example.org/rrsets/", `{"detail":"Not found."}`},
		{"tok", "/domains/example.com/rrsets/www/A/", `{"detail":"Not found."}`},
	} {
		code, body := call(t, f, "GET", tc.path, tc.token, "")
		if body != tc.want || (code != 401 && code != 404) {
			t.Errorf("GET %s with %q: %d %s, want %s", tc.path, tc.token, code, body, tc.want)
		}
	}
}

// A bulk request with one bad part changes nothing and answers one error
// object per part, {} for the good ones.
func TestBulkAtomicWithErrorList(t *testing.T) {
	f := New(t, "tok")
	f.AddDomain("example.com")
	body := `[{"subname":"_25._tcp.mail","type":"TLSA","ttl":3600,"records":["3 1 1 AABB"]},
	          {"subname":"x","type":"TLSA","ttl":60,"records":["3 1 1 ZZ"]}]`
	code, resp := call(t, f, "PUT", "/domains/example.com/rrsets/", "tok", body)
	var errs []map[string][]string
	if code != 400 || json.Unmarshal([]byte(resp), &errs) != nil || len(errs) != 2 || len(errs[0]) != 0 ||
		!strings.Contains(errs[1]["ttl"][0], "greater than or equal to 3600") || !strings.Contains(errs[1]["records"][0], "hexadecimal") {
		t.Fatalf("got %d %s", code, resp)
	}
	if f.RRset("example.com", "_25._tcp.mail", "TLSA") != nil {
		t.Fatal("the good part was applied from a rejected request")
	}
	code, resp = call(t, f, "PUT", "/domains/example.com/rrsets/", "tok", `[{"subname":"_25._tcp.mail","type":"TLSA","ttl":3600,"records":["3 1 1 AA BB"]}]`)
	if code != 200 || !strings.Contains(resp, `"3 1 1 aabb"`) {
		t.Fatalf("got %d %s, want the canonical lower-case form", code, resp)
	}
	code, _ = call(t, f, "PATCH", "/domains/example.com/rrsets/", "tok", `[{"subname":"_25._tcp.mail","type":"TLSA","records":[]}]`)
	if code != 200 || f.RRset("example.com", "_25._tcp.mail", "TLSA") != nil {
		t.Fatalf("records [] did not delete (%d)", code)
	}
}

func TestThrottle(t *testing.T) {
	f := New(t, "tok")
	f.FailNext(429, "7", 1)
	req, _ := http.NewRequest("GET", f.URL+"/api/v1/domains/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("got %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
