// Package desecfake is an in-process fake of the deSEC DNS API
// (https://desec.io/api/v1) for tests of danehook's libdns/desec path. See
// README.md for the behaviours it reproduces and the documentation each
// follows.
package desecfake

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/miekg/dns"
)

// Host is the API host libdns/desec sends every request to.
const Host = "desec.io"

// RRset is one RRset as the API stores it: subname "" is the apex, type
// upper case, records in canonical presentation form, ttl in seconds.
type RRset struct {
	Subname string   `json:"subname"`
	Type    string   `json:"type"`
	Records []string `json:"records"`
	TTL     int      `json:"ttl"`
}

// Fake is a running fake API. URL is its base ("http://127.0.0.1:port").
type Fake struct {
	URL string

	srv *httptest.Server

	mu        sync.Mutex
	token     string
	minTTL    int
	domains   map[string]map[string]*RRset // domain → "subname/TYPE" → RRset
	faults    []fault
	counts    map[string]int
	log       []string
	bodies    []string
	onRequest func(method, path string)
}

type fault struct {
	status     int
	retryAfter string
}

// New starts a fake accepting token ("Authorization: Token <token>") with
// the default minimum TTL 3600 and stops it when the test ends.
func New(t testing.TB, token string) *Fake {
	t.Helper()
	f := &Fake{token: token, minTTL: 3600, domains: map[string]map[string]*RRset{}, counts: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL
	return f
}

// AddDomain creates the domain ("example.com", no trailing dot).
func (f *Fake) AddDomain(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.domains[strings.TrimSuffix(strings.ToLower(name), ".")] = map[string]*RRset{}
}

// SetMinimumTTL sets the domains' minimum_ttl (seconds).
func (f *Fake) SetMinimumTTL(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.minTTL = s
}

// Put stores an RRset without the API (records published by others).
func (f *Fake) Put(domain string, r RRset) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.domains[domain]
	if d == nil {
		panic("desecfake: unknown domain " + domain)
	}
	c := r
	c.Records = append([]string(nil), r.Records...)
	d[c.Subname+"/"+c.Type] = &c
}

// RRset returns a copy of the RRset (nil when absent).
func (f *Fake) RRset(domain, subname, typ string) *RRset {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.domains[domain][subname+"/"+typ]
	if r == nil {
		return nil
	}
	c := *r
	c.Records = append([]string(nil), r.Records...)
	return &c
}

// FailNext makes the next n requests fail with status (before
// authentication). For 429 the body is DRF's throttling message and
// Retry-After is set when retryAfter is not empty.
func (f *Fake) FailNext(status int, retryAfter string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, fault{status, retryAfter})
	}
}

// OnRequest runs fn (without the fake's lock) before each request is
// handled: tests change the RRset between a read and a write with it.
func (f *Fake) OnRequest(fn func(method, path string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onRequest = fn
}

// Requests returns how many requests with method reached the fake.
func (f *Fake) Requests(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

// Log returns "METHOD /path" of every request so far.
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// Bodies returns the request bodies sent so far (for secret checks).
func (f *Fake) Bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

// Intercept makes http.DefaultTransport send requests for Host to the fake
// and refuse every other host (no test may reach the network), until the
// test ends. libdns/desec uses http.DefaultClient and a fixed base URL, so
// this is the only way in. Tests using it must not run in parallel.
func (f *Fake) Intercept(t testing.TB) {
	t.Helper()
	apidns.Intercept(t, map[string]string{Host: f.URL})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func detail(w http.ResponseWriter, status int, msg string) {
	reply(w, status, map[string]string{"detail": msg})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hook := f.onRequest
	f.mu.Unlock()
	if hook != nil {
		hook(r.Method, r.URL.Path)
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	f.counts[r.Method]++
	if len(body) > 0 {
		f.bodies = append(f.bodies, string(body))
	}
	if len(f.faults) > 0 {
		ft := f.faults[0]
		f.faults = f.faults[1:]
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		if ft.status == http.StatusTooManyRequests {
			detail(w, ft.status, "Request was throttled. Expected available in "+ft.retryAfter+" seconds.")
		} else {
			detail(w, ft.status, http.StatusText(ft.status))
		}
		return
	}
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		detail(w, http.StatusUnauthorized, "Authentication credentials were not provided.")
		return
	case auth != "Token "+f.token:
		detail(w, http.StatusUnauthorized, "Invalid token.")
		return
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v1"), "/"), "/")
	if len(parts) == 1 && parts[0] == "domains" && r.Method == http.MethodGet {
		var out []map[string]any
		for n := range f.domains {
			out = append(out, map[string]any{"name": n, "minimum_ttl": f.minTTL})
		}
		sort.Slice(out, func(i, j int) bool { return out[i]["name"].(string) < out[j]["name"].(string) })
		reply(w, http.StatusOK, out)
		return
	}
	if len(parts) < 3 || parts[0] != "domains" || parts[2] != "rrsets" {
		detail(w, http.StatusNotFound, "Not found.")
		return
	}
	d := f.domains[parts[1]]
	if d == nil {
		detail(w, http.StatusNotFound, "Not found.")
		return
	}
	switch {
	case len(parts) == 3 && r.Method == http.MethodGet:
		out := []RRset{}
		for _, rr := range d {
			if t := r.URL.Query().Get("type"); t != "" && t != rr.Type {
				continue
			}
			out = append(out, *rr)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Subname+out[i].Type < out[j].Subname+out[j].Type })
		reply(w, http.StatusOK, f.withNames(parts[1], out))
	case len(parts) == 5 && r.Method == http.MethodGet:
		sub := parts[3]
		if sub == "@" {
			sub = ""
		}
		rr := d[sub+"/"+parts[4]]
		if rr == nil {
			detail(w, http.StatusNotFound, "Not found.")
			return
		}
		reply(w, http.StatusOK, f.withNames(parts[1], []RRset{*rr})[0])
	case len(parts) == 3 && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
		f.bulk(w, r.Method, parts[1], d, body)
	default:
		detail(w, http.StatusMethodNotAllowed, "desecfake: "+r.Method+" "+r.URL.Path+" is not modelled")
	}
}

// withNames adds the read-only fields the API returns.
func (f *Fake) withNames(domain string, in []RRset) []map[string]any {
	out := make([]map[string]any, 0, len(in))
	for _, r := range in {
		name := domain + "."
		if r.Subname != "" {
			name = r.Subname + "." + name
		}
		out = append(out, map[string]any{"domain": domain, "subname": r.Subname, "name": name, "type": r.Type,
			"records": r.Records, "ttl": r.TTL, "created": "2026-01-02T03:04:05.000000Z", "touched": "2026-01-02T03:04:05.000000Z"})
	}
	return out
}

// bulk is PUT/PATCH /domains/{name}/rrsets/ with an array: validated as a
// whole, applied atomically, records [] deletes.
func (f *Fake) bulk(w http.ResponseWriter, method, domain string, d map[string]*RRset, body []byte) {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		detail(w, http.StatusBadRequest, "JSON parse error - "+err.Error())
		return
	}
	errs := make([]map[string][]string, len(items))
	bad := false
	type op struct {
		key string
		rr  *RRset // nil = delete
	}
	var ops []op
	seen := map[string]bool{}
	for i, it := range items {
		e := map[string][]string{}
		var sub, typ string
		var ttl *int
		var records *[]string
		if v, ok := it["subname"]; ok {
			_ = json.Unmarshal(v, &sub)
		} else if method == http.MethodPut || method == http.MethodPatch {
			e["subname"] = []string{"This field is required."}
		}
		if v, ok := it["type"]; ok {
			_ = json.Unmarshal(v, &typ)
		} else {
			e["type"] = []string{"This field is required."}
		}
		if v, ok := it["ttl"]; ok {
			var n int
			if json.Unmarshal(v, &n) == nil {
				ttl = &n
			}
		}
		if v, ok := it["records"]; ok {
			var rs []string
			if json.Unmarshal(v, &rs) == nil {
				records = &rs
			}
		}
		key := sub + "/" + typ
		if typ != "" && typ != strings.ToUpper(typ) {
			e["type"] = []string{"This field must be uppercase."} // modelled wording
		}
		if seen[key] {
			e["non_field_errors"] = []string{"Same subname and type as in another RRset of this request."} // modelled wording
		}
		seen[key] = true
		existing := d[key]
		deleting := records != nil && len(*records) == 0
		if records == nil && (method == http.MethodPut || existing == nil) {
			e["records"] = []string{"This field is required."}
		}
		if ttl == nil && !deleting && (method == http.MethodPut || existing == nil) {
			e["ttl"] = []string{"This field is required."}
		}
		if ttl != nil && !deleting {
			switch {
			case *ttl < f.minTTL:
				e["ttl"] = []string{fmt.Sprintf("Ensure this value is greater than or equal to %d.", f.minTTL)}
			case *ttl > 86400:
				e["ttl"] = []string{"Ensure this value is less than or equal to 86400."}
			}
		}
		var canon []string
		if records != nil && typ == "TLSA" {
			for _, rec := range *records {
				c, msg := canonicalTLSA(rec)
				if msg != "" {
					e["records"] = []string{msg}
					break
				}
				canon = append(canon, c)
			}
		} else if records != nil {
			canon = *records
		}
		if len(e) > 0 {
			bad = true
			errs[i] = e
			continue
		}
		errs[i] = map[string][]string{}
		switch {
		case deleting:
			ops = append(ops, op{key: key})
		default:
			n := RRset{Subname: sub, Type: typ}
			if existing != nil {
				n = *existing
			}
			if canon != nil {
				n.Records = dedupe(canon)
			}
			if ttl != nil {
				n.TTL = *ttl
			}
			ops = append(ops, op{key: key, rr: &n})
		}
	}
	if bad {
		reply(w, http.StatusBadRequest, errs)
		return
	}
	var out []RRset
	for _, o := range ops {
		if o.rr == nil {
			delete(d, o.key)
			continue
		}
		d[o.key] = o.rr
		out = append(out, *o.rr)
	}
	reply(w, http.StatusOK, f.withNames(domain, out))
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// canonicalTLSA returns the canonical presentation of a TLSA record
// ("3 1 1 <lower-case hex>", no chunking), as deSEC's dnspython-based
// canonicalisation does, or "" and the API's error text.
func canonicalTLSA(s string) (string, string) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return "", "Record content for type TLSA malformed: expected 4 fields"
	}
	var v [3]int
	for i := range 3 {
		n, err := strconv.Atoi(f[i])
		if err != nil || n < 0 || n > 255 {
			return "", "Record content for type TLSA malformed: bad number " + f[i]
		}
		v[i] = n
	}
	h := strings.Join(f[3:], "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		return "", "Cannot parse hexadecimal or base64 record contents"
	}
	return fmt.Sprintf("%d %d %d %s", v[0], v[1], v[2], hex.EncodeToString(b)), ""
}

// DNS returns what deSEC's name servers would serve, for apidns.Serve:
// every domain with its RRsets (records in the stored presentation form).
func (f *Fake) DNS() map[string][]dns.RR {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]dns.RR{}
	for name, d := range f.domains {
		apex := dns.Fqdn(name)
		out[apex] = nil
		for _, r := range d {
			owner := apex
			if r.Subname != "" {
				owner = r.Subname + "." + apex
			}
			for _, rec := range r.Records {
				rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", owner, r.TTL, r.Type, rec))
				if err == nil {
					out[apex] = append(out[apex], rr)
				}
			}
		}
	}
	return out
}
