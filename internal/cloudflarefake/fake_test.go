package cloudflarefake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const testToken = "fake-token-0123456789"

// call sends one request to the fake and returns the status, the Retry-After
// header and the decoded envelope.
func call(t *testing.T, f *Fake, method, path, token, body string) (int, string, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), env
}

func firstError(env map[string]any) (code float64, msg string, chain []any) {
	errs, _ := env["errors"].([]any)
	if len(errs) == 0 {
		return 0, "", nil
	}
	e := errs[0].(map[string]any)
	chain, _ = e["error_chain"].([]any)
	return e["code"].(float64), e["message"].(string), chain
}

func TestAuth(t *testing.T) {
	f := New(t, testToken)
	for _, tc := range []struct {
		name       string
		header     string
		wantStatus int
		wantCode   float64
	}{
		{"missing", "", 400, 9106},
		{"not bearer", "Token " + testToken, 400, 6003},
		{"wrong token", "Bearer wrong-token", 403, 9109},
		{"good", "Bearer " + testToken, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", f.URL+"/zones", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := f.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&env)
			code, _, _ := firstError(env)
			if resp.StatusCode != tc.wantStatus || code != tc.wantCode {
				t.Errorf("got HTTP %d code %v, want HTTP %d code %v", resp.StatusCode, code, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

func TestContentOnlyTLSAIsRejected(t *testing.T) {
	f := New(t, testToken)
	id := f.AddZone("example.com")
	status, _, env := call(t, f, "POST", "/zones/"+id+"/dns_records", testToken,
		`{"type":"TLSA","name":"_25._tcp.mail","content":"3 1 1 abcd","ttl":300}`)
	code, msg, chain := firstError(env)
	if status != 400 || code != 1004 || msg != "DNS Validation Error" {
		t.Fatalf("got HTTP %d code %v %q, want HTTP 400 code 1004 \"DNS Validation Error\"", status, code, msg)
	}
	var got []string
	for _, c := range chain {
		got = append(got, c.(map[string]any)["message"].(string))
	}
	want := []string{"usage is a required data field.", "selector is a required data field.",
		"matching_type is a required data field.", "certificate is a required data field."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got error_chain %q, want %q", got, want)
	}
	if env["success"] != false || env["result"] != nil {
		t.Errorf("got success=%v result=%v, want false and null", env["success"], env["result"])
	}
	if n := len(f.Records("example.com")); n != 0 {
		t.Errorf("got %d records stored, want 0", n)
	}
}

func TestTLSAValidation(t *testing.T) {
	f := New(t, testToken)
	id := f.AddZone("example.com")
	for _, tc := range []struct {
		name, data string
		want       int
	}{
		{"ok zero selector and matching type", `{"usage":3,"selector":0,"matching_type":0,"certificate":"3082"}`, 200},
		{"usage 4", `{"usage":4,"selector":1,"matching_type":1,"certificate":"ab"}`, 400},
		{"selector 2", `{"usage":3,"selector":2,"matching_type":1,"certificate":"ab"}`, 400},
		{"matching type 3", `{"usage":3,"selector":1,"matching_type":3,"certificate":"ab"}`, 400},
		{"odd hex", `{"usage":3,"selector":1,"matching_type":1,"certificate":"abc"}`, 400},
		{"not hex", `{"usage":3,"selector":1,"matching_type":1,"certificate":"zz"}`, 400},
		{"selector omitted", `{"usage":3,"matching_type":1,"certificate":"ab"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, _ := call(t, f, "POST", "/zones/"+id+"/dns_records", testToken,
				`{"type":"TLSA","name":"_25._tcp.`+strings.ReplaceAll(tc.name, " ", "-")+`","ttl":1,"data":`+tc.data+`}`)
			if status != tc.want {
				t.Errorf("got HTTP %d, want %d", status, tc.want)
			}
		})
	}
}

func TestCreateReturnsUpperCaseAndContent(t *testing.T) {
	f := New(t, testToken)
	id := f.AddZone("example.com.")
	status, _, env := call(t, f, "POST", "/zones/"+id+"/dns_records", testToken,
		`{"type":"TLSA","name":"_25._tcp.mail.example.com","ttl":3600,"data":{"usage":3,"selector":1,"matching_type":1,"certificate":"abcdef01"}}`)
	if status != 200 {
		t.Fatalf("got HTTP %d, want 200: %v", status, env)
	}
	res := env["result"].(map[string]any)
	if got, want := res["content"], "3 1 1 ABCDEF01"; got != want {
		t.Errorf("got content %q, want %q", got, want)
	}
	if got := res["data"].(map[string]any)["certificate"]; got != "ABCDEF01" {
		t.Errorf("got data.certificate %q, want ABCDEF01", got)
	}
	if got := res["name"]; got != "_25._tcp.mail.example.com" {
		t.Errorf("got name %q, want _25._tcp.mail.example.com", got)
	}

	// The same record again, in other case: identical.
	status, _, env = call(t, f, "POST", "/zones/"+id+"/dns_records", testToken,
		`{"type":"TLSA","name":"_25._tcp.mail","ttl":3600,"data":{"usage":3,"selector":1,"matching_type":1,"certificate":"ABCDEF01"}}`)
	code, msg, _ := firstError(env)
	if status != 400 || code != 81058 || msg != "An identical record already exists." {
		t.Errorf("got HTTP %d code %v %q, want HTTP 400 code 81058", status, code, msg)
	}
}

func TestDeleteUnknownRecord(t *testing.T) {
	f := New(t, testToken)
	id := f.AddZone("example.com")
	status, _, env := call(t, f, "DELETE", "/zones/"+id+"/dns_records/0123456789abcdef0123456789abcdef", testToken, "")
	code, msg, _ := firstError(env)
	if status != 404 || code != 81044 || msg != "Record does not exist." {
		t.Errorf("got HTTP %d code %v %q, want HTTP 404 code 81044", status, code, msg)
	}
	status, _, env = call(t, f, "GET", "/zones/ffff/dns_records", testToken, "")
	if code, _, _ := firstError(env); status != 400 || code != 7003 {
		t.Errorf("unknown zone: got HTTP %d code %v, want HTTP 400 code 7003", status, code)
	}
}

func TestPagination(t *testing.T) {
	f := New(t, testToken)
	id := f.AddZone("example.com")
	for i := range 7 {
		f.AddRecord("example.com", Record{Name: "_25._tcp.mail", Type: "TLSA", Usage: 3, Selector: 1, MatchingType: 1,
			Certificate: strings.Repeat("0", 62) + string("0123456789"[i]) + "a"})
	}
	f.AddRecord("example.com", Record{Name: "mail", Type: "A", Content: "192.0.2.1"})
	for _, tc := range []struct {
		query           string
		wantCount       int
		wantTotalPages  float64
		wantTotalCount  float64
		wantPerPageEcho float64
	}{
		{"?type=TLSA&name=_25._tcp.mail.example.com", 7, 1, 7, 100},
		{"?type=TLSA&name=_25._tcp.mail.example.com&per_page=3&page=1", 3, 3, 7, 3},
		{"?type=TLSA&name=_25._tcp.mail.example.com&per_page=3&page=3", 1, 3, 7, 3},
		{"?type=TLSA&name=_25._tcp.mail.example.com&per_page=3&page=4", 0, 3, 7, 3},
		{"?name=mail.example.com", 1, 1, 1, 100},
	} {
		status, _, env := call(t, f, "GET", "/zones/"+id+"/dns_records"+tc.query, testToken, "")
		if status != 200 {
			t.Fatalf("%s: got HTTP %d", tc.query, status)
		}
		res := env["result"].([]any)
		ri := env["result_info"].(map[string]any)
		if len(res) != tc.wantCount || ri["total_pages"] != tc.wantTotalPages || ri["total_count"] != tc.wantTotalCount || ri["per_page"] != tc.wantPerPageEcho {
			t.Errorf("%s: got %d results, result_info %v; want %d results, total_pages %v, total_count %v, per_page %v",
				tc.query, len(res), ri, tc.wantCount, tc.wantTotalPages, tc.wantTotalCount, tc.wantPerPageEcho)
		}
	}
}

func TestFailNextAndCounters(t *testing.T) {
	f := New(t, testToken)
	f.AddZone("example.com")
	f.FailNext(429, "1", 1)
	f.FailNext(503, "", 1)
	status, ra, env := call(t, f, "GET", "/zones?name=example.com", testToken, "")
	if code, _, _ := firstError(env); status != 429 || ra != "1" || code != 10100 {
		t.Errorf("got HTTP %d Retry-After %q code %v, want 429 \"1\" 10100", status, ra, code)
	}
	status, ra, _ = call(t, f, "GET", "/zones?name=example.com", testToken, "")
	if status != 503 || ra != "" {
		t.Errorf("got HTTP %d Retry-After %q, want 503 and none", status, ra)
	}
	status, _, env = call(t, f, "GET", "/zones?name=example.com", testToken, "")
	if status != 200 || len(env["result"].([]any)) != 1 {
		t.Errorf("got HTTP %d %v, want 200 with one zone", status, env["result"])
	}
	if got := f.Requests("GET"); got != 3 {
		t.Errorf("got %d GET requests counted, want 3", got)
	}
	if got := f.Log(); len(got) != 3 || got[0] != "GET /zones?name=example.com" {
		t.Errorf("got log %q, want three \"GET /zones?name=example.com\"", got)
	}
}
