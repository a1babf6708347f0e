// Package hetznerfake is an in-process fake of the Hetzner DNS Console API
// (https://dns.hetzner.com/api/v1) for tests of danehook's libdns/hetzner
// path. See README.md for the behaviours it reproduces and the sources.
package hetznerfake

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/miekg/dns"
)

// Host is the API host libdns/hetzner sends every request to.
const Host = "dns.hetzner.com"

// Record is one record as the API stores it: Name relative to the zone
// ("@" at the apex), Value as given.
type Record struct {
	ID     string `json:"id"`
	ZoneID string `json:"zone_id"`
	Type   string `json:"type"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	TTL    int    `json:"ttl,omitempty"`
}

type zone struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	TTL  int    `json:"ttl"`
}

// Fake is a running fake API. URL is its base ("http://127.0.0.1:port").
type Fake struct {
	URL string

	srv *httptest.Server

	mu          sync.Mutex
	token       string
	zones       []zone
	records     []*Record
	faults      []fault
	counts      map[string]int
	log         []string
	serial      int
	emptyLookup bool
	failAt      int
	failStatus  int
}

type fault struct {
	status     int
	retryAfter string
}

// New starts a fake that accepts token in the Auth-API-Token header and
// stops it when the test ends.
func New(t testing.TB, token string) *Fake {
	t.Helper()
	f := &Fake{token: token, counts: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL
	return f
}

func (f *Fake) id(kind string) string {
	f.serial++
	return fmt.Sprintf("%s%022d", kind, f.serial)
}

// AddZone creates the zone ("example.com") and returns its id.
func (f *Fake) AddZone(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	z := zone{ID: f.id("z"), Name: strings.TrimSuffix(strings.ToLower(name), "."), TTL: 86400}
	f.zones = append(f.zones, z)
	return z.ID
}

// AddRecord stores r in the zone named zoneName without the API and
// returns its id.
func (f *Fake) AddRecord(zoneName string, r Record) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zoneByName(zoneName)
	if !ok {
		panic("hetznerfake: unknown zone " + zoneName)
	}
	c := r
	c.ZoneID, c.ID = z.ID, f.id("r")
	f.records = append(f.records, &c)
	return c.ID
}

// Records returns copies of the zone's records in creation order.
func (f *Fake) Records(zoneName string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	z, _ := f.zoneByName(zoneName)
	var out []Record
	for _, r := range f.records {
		if r.ZoneID == z.ID {
			out = append(out, *r)
		}
	}
	return out
}

// AnswerUnknownZoneEmpty makes GET /zones?name=<unknown> answer 200 with an
// empty list instead of 404 (fake-only: it shows libdns/hetzner's
// unchecked zones[0]).
func (f *Fake) AnswerUnknownZoneEmpty() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emptyLookup = true
}

// FailNext makes the next n requests fail with status, before
// authentication; retryAfter, when set, is sent as Retry-After.
func (f *Fake) FailNext(status int, retryAfter string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, fault{status, retryAfter})
	}
}

// Intercept makes http.DefaultTransport send requests for Host to the fake
// and refuse every other host, until the test ends (libdns/hetzner has a
// fixed base URL and a default http.Client). Tests using it must not run in
// parallel.
func (f *Fake) Intercept(t testing.TB) {
	t.Helper()
	apidns.Intercept(t, map[string]string{Host: f.URL})
}

// FailAfter lets the next n requests through and fails the one after
// them with status (a failure in the middle of a batch).
func (f *Fake) FailAfter(n, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt = f.counts["total"] + n + 1
	f.failStatus = status
}

// Requests returns how many requests with method reached the fake.
func (f *Fake) Requests(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

// Log returns "METHOD /path?query" of every request so far.
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *Fake) zoneByName(n string) (zone, bool) {
	n = strings.TrimSuffix(strings.ToLower(n), ".")
	for _, z := range f.zones {
		if z.Name == n {
			return z, true
		}
	}
	return zone{}, false
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string, extra map[string]any) {
	body := map[string]any{"error": map[string]any{"message": msg, "code": status}}
	for k, v := range extra {
		body[k] = v
	}
	reply(w, status, body)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	defer f.mu.Unlock()
	entry := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		entry += "?" + r.URL.RawQuery
	}
	f.log = append(f.log, entry)
	f.counts[r.Method]++
	f.counts["total"]++
	if f.failAt != 0 && f.counts["total"] == f.failAt {
		f.failAt = 0
		apiError(w, f.failStatus, http.StatusText(f.failStatus), nil)
		return
	}
	// Rate-limit headers on every answer (modelled values).
	w.Header().Set("Ratelimit-Limit", "3600")
	if len(f.faults) > 0 {
		ft := f.faults[0]
		f.faults = f.faults[1:]
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		if ft.status == http.StatusTooManyRequests {
			w.Header().Set("Ratelimit-Remaining", "0")
			reply(w, ft.status, map[string]string{"message": "API rate limit exceeded"})
		} else {
			apiError(w, ft.status, http.StatusText(ft.status), nil)
		}
		return
	}
	if r.Header.Get("Auth-API-Token") != f.token || f.token == "" {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "Invalid authentication credentials"})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v1")
	switch {
	case path == "/zones" && r.Method == http.MethodGet:
		var out []zone
		name := r.URL.Query().Get("name")
		for _, z := range f.zones {
			if name == "" || z.Name == strings.ToLower(name) {
				out = append(out, z)
			}
		}
		if len(out) == 0 && name != "" && !f.emptyLookup {
			apiError(w, http.StatusNotFound, "zone not found", map[string]any{"zones": []zone{}})
			return
		}
		if out == nil {
			out = []zone{}
		}
		reply(w, http.StatusOK, map[string]any{"zones": out, "meta": pagination(len(out))})
	case path == "/records" && r.Method == http.MethodGet:
		zid := r.URL.Query().Get("zone_id")
		if !f.hasZoneID(zid) {
			apiError(w, http.StatusNotFound, "zone not found", map[string]any{"records": []Record{}})
			return
		}
		out := []Record{}
		for _, rec := range f.records {
			if rec.ZoneID == zid {
				out = append(out, *rec)
			}
		}
		reply(w, http.StatusOK, map[string]any{"records": out, "meta": pagination(len(out))})
	case path == "/records" && r.Method == http.MethodPost:
		var in Record
		if err := json.Unmarshal(body, &in); err != nil {
			apiError(w, http.StatusBadRequest, "invalid JSON: "+err.Error(), nil)
			return
		}
		if !f.hasZoneID(in.ZoneID) {
			apiError(w, http.StatusNotFound, "zone not found", map[string]any{"record": map[string]any{}})
			return
		}
		if msg := validate(in); msg != "" {
			apiError(w, http.StatusUnprocessableEntity, msg, map[string]any{"record": map[string]any{}})
			return
		}
		in.ID = f.id("r")
		rec := in
		f.records = append(f.records, &rec)
		reply(w, http.StatusOK, map[string]any{"record": rec})
	case strings.HasPrefix(path, "/records/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(path, "/records/")
		for i, rec := range f.records {
			if rec.ID == id {
				f.records = append(f.records[:i], f.records[i+1:]...)
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		apiError(w, http.StatusNotFound, "record not found", nil)
	default:
		apiError(w, http.StatusNotFound, "hetznerfake: "+r.Method+" "+path+" is not modelled", nil)
	}
}

func (f *Fake) hasZoneID(id string) bool {
	for _, z := range f.zones {
		if z.ID == id {
			return true
		}
	}
	return false
}

func pagination(n int) map[string]any {
	return map[string]any{"pagination": map[string]int{"page": 1, "per_page": 100, "last_page": 1, "total_entries": n}}
}

// validate checks a new record; "" when it is acceptable.
func validate(r Record) string {
	switch {
	case r.Type == "":
		return "type is required"
	case r.Name == "":
		return "name is required"
	case r.Value == "":
		return "value is required"
	case r.TTL < 0:
		return "ttl must not be negative"
	}
	if r.Type == "TLSA" {
		f := strings.Fields(r.Value)
		if len(f) < 4 {
			return fmt.Sprintf("invalid TLSA value %q", r.Value)
		}
		for i, max := range []int{3, 1, 2} {
			n, err := strconv.Atoi(f[i])
			if err != nil || n < 0 || n > max {
				return fmt.Sprintf("invalid TLSA value %q", r.Value)
			}
		}
		if b, err := hex.DecodeString(strings.Join(f[3:], "")); err != nil || len(b) == 0 {
			return fmt.Sprintf("invalid TLSA value %q", r.Value)
		}
	}
	return ""
}

// DNS returns what Hetzner's name servers would serve, for apidns.Serve.
// A record without a TTL is served with the zone's TTL.
func (f *Fake) DNS() map[string][]dns.RR {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]dns.RR{}
	for _, z := range f.zones {
		apex := dns.Fqdn(z.Name)
		out[apex] = nil
		for _, r := range f.records {
			if r.ZoneID != z.ID {
				continue
			}
			owner := apex
			if r.Name != "@" && r.Name != "" {
				owner = r.Name + "." + apex
			}
			ttl := r.TTL
			if ttl == 0 {
				ttl = z.TTL
			}
			rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", owner, ttl, r.Type, r.Value))
			if err == nil {
				out[apex] = append(out[apex], rr)
			}
		}
	}
	return out
}
