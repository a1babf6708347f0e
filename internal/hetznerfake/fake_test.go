package hetznerfake

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func call(t *testing.T, f *Fake, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.URL+"/api/v1"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Auth-API-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestAPI(t *testing.T) {
	f := New(t, "tok")
	zid := f.AddZone("example.com")
	for _, tc := range []struct {
		method, path, token, body string
		code                      int
		contains                  string
	}{
		{"GET", "/zones?name=example.com", "bad", "", 401, "Invalid authentication credentials"},
		{"GET", "/zones?name=example.org", "tok", "", 404, `"code":404`},
		{"GET", "/zones?name=example.com", "tok", "", 200, `"id":"` + zid + `"`},
		{"POST", "/records", "tok", `{"zone_id":"` + zid + `","type":"TLSA","name":"_25._tcp.mail","value":"9 1 1 ab","ttl":300}`, 422, "invalid TLSA value"},
		{"POST", "/records", "tok", `{"zone_id":"` + zid + `","type":"TLSA","name":"_25._tcp.mail","value":"3 1 1 ab","ttl":300}`, 200, `"record":{`},
		{"DELETE", "/records/nope", "tok", "", 404, "record not found"},
		{"GET", "/records?zone_id=nope", "tok", "", 404, "zone not found"},
	} {
		code, body := call(t, f, tc.method, tc.path, tc.token, tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.contains)
		}
	}
	if n := len(f.Records("example.com")); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
	f.FailNext(429, "5", 1)
	code, body := call(t, f, "GET", "/zones", "tok", "")
	if code != 429 || !strings.Contains(body, "rate limit") {
		t.Errorf("got %d %s", code, body)
	}
}
