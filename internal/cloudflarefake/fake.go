// Package cloudflarefake is an in-process fake of the parts of the Cloudflare
// API v4 that danehook uses: zone lookup by name, listing, creating and
// deleting DNS records, with the validation, error envelopes, pagination and
// rate limiting of the real API. Each reproduced behaviour, and where it is
// described, is listed in README.md; behaviour modelled without a stored
// source is marked there.
//
// It serves HTTPS on 127.0.0.1 through net/http/httptest and is meant for
// tests only: fault injection (FailNext) and checks of what was sent
// (Requests, Log) are its reason to exist.
package cloudflarefake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Record is one DNS record held by the fake, as the API would return it.
// For TLSA, Usage, Selector, MatchingType and Certificate hold the data
// object (Certificate in upper-case hex, as Cloudflare returns it) and
// Content is derived from them ("3 1 1 ABCD…"). Name is the full name without
// trailing dot, lower case. TTL is in seconds, 1 meaning automatic.
type Record struct {
	ID           string
	ZoneID       string
	Name         string
	Type         string
	Content      string
	TTL          int
	Usage        int
	Selector     int
	MatchingType int
	Certificate  string
	// AsServed keeps Certificate exactly as given by AddRecord (spaces,
	// lower or mixed case) instead of upper-casing it: a record created in
	// the dashboard from pasted text, or an API that changes its
	// presentation. Content is derived from it all the same.
	AsServed bool
}

// Fake is a running fake API. URL is its base URL (ending in "/client/v4"),
// to be used as the provider's BaseURL together with Client().
type Fake struct {
	URL string

	srv *httptest.Server

	mu      sync.Mutex
	tokens  map[string]bool
	zones   []zone
	records []*Record // in creation order, all zones
	faults  []fault
	delays  []time.Duration
	counts  map[string]int
	log     []string
	serial  int
	now     time.Time
}

type zone struct {
	ID, Name string
}

type fault struct {
	status     int
	retryAfter string
}

// New starts a fake that accepts token as a Bearer token and stops it when
// the test ends.
func New(t testing.TB, token string) *Fake {
	t.Helper()
	f := &Fake{
		tokens: map[string]bool{token: true},
		counts: map[string]int{},
		now:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + "/client/v4"
	return f
}

// Client returns an HTTP client that trusts the fake's certificate.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// AddToken makes token valid too (for example a second, Zone:Read token).
func (f *Fake) AddToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = true
}

// AddZone creates the zone name ("example.com" or "example.com.") and returns
// its 32-hex-digit id.
func (f *Fake) AddZone(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = normName(name)
	id := f.newID("zone:" + name)
	f.zones = append(f.zones, zone{ID: id, Name: name})
	return id
}

// AddRecord stores r in the zone named zone without going through the API
// (records published by others, seeds for pagination). For TLSA, Content is
// derived from the data fields and Certificate is upper-cased. A zero TTL
// becomes 1 (automatic). It returns the record id and panics on an unknown zone.
func (f *Fake) AddRecord(zoneName string, r Record) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zoneByName(normName(zoneName))
	if !ok {
		panic("cloudflarefake: AddRecord: unknown zone " + zoneName)
	}
	r.ZoneID = z.ID
	r.Name = absName(r.Name, z.Name)
	r.Type = strings.ToUpper(r.Type)
	if r.TTL == 0 {
		r.TTL = 1
	}
	if r.Type == "TLSA" {
		if !r.AsServed {
			r.Certificate = strings.ToUpper(r.Certificate)
		}
		r.Content = tlsaContent(r)
	}
	r.ID = f.newID(fmt.Sprintf("record:%s:%s:%s", r.Name, r.Type, r.Content))
	rec := r
	f.records = append(f.records, &rec)
	return rec.ID
}

// Records returns a copy of the records in the zone named zone, in creation
// order.
func (f *Fake) Records(zoneName string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zoneByName(normName(zoneName))
	if !ok {
		return nil
	}
	var out []Record
	for _, r := range f.records {
		if r.ZoneID == z.ID {
			out = append(out, *r)
		}
	}
	return out
}

// FailNext makes the next n requests (of any kind, before authentication)
// fail with status, as a rate limiter (429) or a failing origin (5xx) would.
// retryAfter, when not empty, is sent as the Retry-After header (Cloudflare
// sends seconds). Calls queue up: FailNext(429, "1", 1) then FailNext(503,
// "", 2) fails three requests in that order.
func (f *Fake) FailNext(status int, retryAfter string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, fault{status: status, retryAfter: retryAfter})
	}
}

// DelayNext makes the next n requests wait d before they are answered (a
// slow origin), or until the client gives up. Delays are taken in FIFO
// order and apply after the request is counted and logged, before FailNext faults
// and authentication.
func (f *Fake) DelayNext(d time.Duration, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.delays = append(f.delays, d)
	}
}

// Requests returns how many requests with method (GET, POST, DELETE, …)
// reached the fake, failed ones included.
func (f *Fake) Requests(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

// Log returns every request so far as "METHOD /path?query" with the path
// relative to URL.
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// --- request handling ---

type apiError struct {
	Code       int        `json:"code"`
	Message    string     `json:"message"`
	ErrorChain []apiError `json:"error_chain,omitempty"`
}

type envelope struct {
	Success    bool        `json:"success"`
	Errors     []apiError  `json:"errors"`
	Messages   []any       `json:"messages"`
	Result     any         `json:"result"`
	ResultInfo *resultInfo `json:"result_info,omitempty"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func reply(w http.ResponseWriter, status int, env envelope) {
	if env.Errors == nil {
		env.Errors = []apiError{}
	}
	env.Messages = []any{}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(env)
}

func fail(w http.ResponseWriter, status int, errs ...apiError) {
	reply(w, status, envelope{Success: false, Errors: errs})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/client/v4")
	entry := r.Method + " " + path
	if r.URL.RawQuery != "" {
		entry += "?" + r.URL.RawQuery
	}
	f.log = append(f.log, entry)
	f.counts[r.Method]++
	if len(f.delays) > 0 {
		d := f.delays[0]
		f.delays = f.delays[1:]
		f.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
		f.mu.Lock()
	}

	if len(f.faults) > 0 {
		ft := f.faults[0]
		f.faults = f.faults[1:]
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		if ft.status == http.StatusTooManyRequests {
			fail(w, ft.status, apiError{Code: 10100, Message: "More than 1200 requests per 300 seconds reached. Please wait and consider throttling your request speed"})
		} else {
			fail(w, ft.status, apiError{Code: ft.status, Message: http.StatusText(ft.status)})
		}
		return
	}
	if !f.authorized(w, r) {
		return
	}

	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "zones" && r.Method == http.MethodGet:
		f.listZones(w, r)
		return
	case len(parts) >= 3 && parts[0] == "zones" && parts[2] == "dns_records":
		z, ok := f.zoneByID(parts[1])
		if !ok {
			break
		}
		switch {
		case len(parts) == 3 && r.Method == http.MethodGet:
			f.listRecords(w, r, z)
			return
		case len(parts) == 3 && r.Method == http.MethodPost:
			f.createRecord(w, r, z)
			return
		case len(parts) == 4 && r.Method == http.MethodGet:
			f.getRecord(w, z, parts[3])
			return
		case len(parts) == 4 && r.Method == http.MethodDelete:
			f.deleteRecord(w, z, parts[3])
			return
		case len(parts) == 4 && (r.Method == http.MethodPatch || r.Method == http.MethodPut):
			// Not modelled: the real API updates the record. Answered so a
			// test can see that an update was attempted (Log) without the
			// fake pretending to know the update semantics.
			fail(w, http.StatusMethodNotAllowed, apiError{Code: 0, Message: "cloudflarefake: " + r.Method + " is not modelled"})
			return
		}
	}
	fail(w, http.StatusBadRequest,
		apiError{Code: 7003, Message: "Could not route to " + r.URL.Path + ", perhaps your object identifier is invalid?"},
		apiError{Code: 7000, Message: "No route for that URI"})
}

// authorized checks the Authorization header and answers the failure itself.
func (f *Fake) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == "" {
		fail(w, http.StatusBadRequest, apiError{Code: 9106, Message: "Missing X-Auth-Key, X-Auth-Email or Authorization headers"})
		return false
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") {
		fail(w, http.StatusBadRequest, apiError{Code: 6003, Message: "Invalid request headers",
			ErrorChain: []apiError{{Code: 6111, Message: "Invalid format for Authorization header"}}})
		return false
	}
	for known := range f.tokens {
		if subtle.ConstantTimeCompare([]byte(known), []byte(tok)) == 1 {
			return true
		}
	}
	fail(w, http.StatusForbidden, apiError{Code: 9109, Message: "Invalid access token"})
	return false
}

// page parses page and per_page (default def, bounds lo..hi) and slices n
// items; it returns the bounds and the result_info.
func page(r *http.Request, n, def, lo, hi int) (int, int, *resultInfo) {
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p < 1 {
		p = 1
	}
	pp := def
	if s := r.URL.Query().Get("per_page"); s != "" {
		if v, err := strconv.Atoi(s); err == nil {
			pp = min(max(v, lo), hi)
		}
	}
	start := min((p-1)*pp, n)
	end := min(start+pp, n)
	total := (n + pp - 1) / pp
	return start, end, &resultInfo{Page: p, PerPage: pp, Count: end - start, TotalCount: n, TotalPages: total}
}

type zoneJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Status      string   `json:"status"`
	Paused      bool     `json:"paused"`
	Type        string   `json:"type"`
	NameServers []string `json:"name_servers"`
	CreatedOn   string   `json:"created_on"`
	ModifiedOn  string   `json:"modified_on"`
	ActivatedOn string   `json:"activated_on"`
}

func (f *Fake) listZones(w http.ResponseWriter, r *http.Request) {
	want := normName(r.URL.Query().Get("name"))
	var zs []zoneJSON
	ts := f.now.Format(time.RFC3339)
	for _, z := range f.zones {
		if want != "" && z.Name != want {
			continue
		}
		zs = append(zs, zoneJSON{ID: z.ID, Name: z.Name, Status: "active", Type: "full",
			NameServers: []string{"ada.ns.cloudflare.com", "bob.ns.cloudflare.com"}, CreatedOn: ts, ModifiedOn: ts, ActivatedOn: ts})
	}
	start, end, ri := page(r, len(zs), 20, 5, 50)
	res := zs[start:end]
	if res == nil {
		res = []zoneJSON{}
	}
	reply(w, http.StatusOK, envelope{Success: true, Result: res, ResultInfo: ri})
}

type tlsaData struct {
	Usage        int    `json:"usage"`
	Selector     int    `json:"selector"`
	MatchingType int    `json:"matching_type"`
	Certificate  string `json:"certificate"`
}

type recordJSON struct {
	ID         string    `json:"id"`
	ZoneID     string    `json:"zone_id"`
	ZoneName   string    `json:"zone_name"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Content    string    `json:"content"`
	Proxiable  bool      `json:"proxiable"`
	Proxied    bool      `json:"proxied"`
	TTL        int       `json:"ttl"`
	Locked     bool      `json:"locked"`
	Data       *tlsaData `json:"data,omitempty"`
	Meta       any       `json:"meta"`
	Comment    *string   `json:"comment"`
	Tags       []string  `json:"tags"`
	CreatedOn  string    `json:"created_on"`
	ModifiedOn string    `json:"modified_on"`
}

func (f *Fake) recordJSON(r *Record, z zone) recordJSON {
	ts := f.now.Format(time.RFC3339Nano)
	out := recordJSON{ID: r.ID, ZoneID: z.ID, ZoneName: z.Name, Name: r.Name, Type: r.Type, Content: r.Content, TTL: r.TTL,
		Meta: map[string]any{"auto_added": false, "managed_by_apps": false, "managed_by_argo_tunnel": false},
		Tags: []string{}, CreatedOn: ts, ModifiedOn: ts}
	if r.Type == "TLSA" {
		out.Data = &tlsaData{Usage: r.Usage, Selector: r.Selector, MatchingType: r.MatchingType, Certificate: r.Certificate}
	}
	return out
}

func (f *Fake) listRecords(w http.ResponseWriter, r *http.Request, z zone) {
	q := r.URL.Query()
	typ := strings.ToUpper(q.Get("type"))
	name := ""
	if n := q.Get("name"); n != "" {
		name = absName(n, z.Name)
	}
	if n := q.Get("name.exact"); n != "" {
		name = absName(n, z.Name)
	}
	content := q.Get("content")
	if c := q.Get("content.exact"); c != "" {
		content = c
	}
	var recs []recordJSON
	for _, rec := range f.records {
		if rec.ZoneID != z.ID || (typ != "" && rec.Type != typ) || (name != "" && rec.Name != name) ||
			(content != "" && !strings.EqualFold(rec.Content, content)) {
			continue
		}
		recs = append(recs, f.recordJSON(rec, z))
	}
	start, end, ri := page(r, len(recs), 100, 1, 5_000_000)
	res := recs[start:end]
	if res == nil {
		res = []recordJSON{}
	}
	reply(w, http.StatusOK, envelope{Success: true, Result: res, ResultInfo: ri})
}

func (f *Fake) getRecord(w http.ResponseWriter, z zone, id string) {
	for _, rec := range f.records {
		if rec.ZoneID == z.ID && rec.ID == id {
			reply(w, http.StatusOK, envelope{Success: true, Result: f.recordJSON(rec, z)})
			return
		}
	}
	fail(w, http.StatusNotFound, apiError{Code: 81044, Message: "Record does not exist."})
}

func (f *Fake) deleteRecord(w http.ResponseWriter, z zone, id string) {
	for i, rec := range f.records {
		if rec.ZoneID == z.ID && rec.ID == id {
			f.records = append(f.records[:i], f.records[i+1:]...)
			reply(w, http.StatusOK, envelope{Success: true, Result: map[string]string{"id": id}})
			return
		}
	}
	fail(w, http.StatusNotFound, apiError{Code: 81044, Message: "Record does not exist."})
}

func validationError(w http.ResponseWriter, chain ...apiError) {
	fail(w, http.StatusBadRequest, apiError{Code: 1004, Message: "DNS Validation Error", ErrorChain: chain})
}

func (f *Fake) createRecord(w http.ResponseWriter, r *http.Request, z zone) {
	var body struct {
		Type    string                     `json:"type"`
		Name    string                     `json:"name"`
		Content string                     `json:"content"`
		TTL     *int                       `json:"ttl"`
		Data    map[string]json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		fail(w, http.StatusBadRequest, apiError{Code: 9207, Message: "Request body is invalid."})
		return
	}
	rec := Record{ZoneID: z.ID, Type: strings.ToUpper(body.Type), TTL: 1}
	if rec.Type == "" {
		validationError(w, apiError{Code: 9000, Message: "DNS record type is invalid."})
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		validationError(w, apiError{Code: 9007, Message: "name is required."})
		return
	}
	rec.Name = absName(body.Name, z.Name)
	if body.TTL != nil {
		rec.TTL = *body.TTL
		if rec.TTL != 1 && (rec.TTL < 30 || rec.TTL > 86400) {
			validationError(w, apiError{Code: 9021, Message: "TTL must be between 30 and 86400 seconds, or 1 for Automatic."})
			return
		}
	}
	if rec.Type == "TLSA" {
		var chain []apiError
		ints := map[string]*int{"usage": &rec.Usage, "selector": &rec.Selector, "matching_type": &rec.MatchingType}
		limits := map[string]int{"usage": 3, "selector": 1, "matching_type": 2}
		for _, field := range []string{"usage", "selector", "matching_type", "certificate"} {
			raw, ok := body.Data[field]
			if !ok || string(raw) == "null" {
				chain = append(chain, apiError{Code: 9101, Message: field + " is a required data field."})
				continue
			}
			if field == "certificate" {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil || s == "" || len(s)%2 != 0 || !isHex(s) {
					chain = append(chain, apiError{Code: 9102, Message: "certificate must be a hexadecimal string."})
					continue
				}
				rec.Certificate = strings.ToUpper(s)
				continue
			}
			var n int
			if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > limits[field] {
				chain = append(chain, apiError{Code: 9102, Message: fmt.Sprintf("%s must be an integer between 0 and %d.", field, limits[field])})
				continue
			}
			*ints[field] = n
		}
		if len(chain) > 0 {
			validationError(w, chain...)
			return
		}
		rec.Content = tlsaContent(rec)
	} else {
		if body.Content == "" {
			validationError(w, apiError{Code: 9005, Message: "content is required."})
			return
		}
		rec.Content = body.Content
	}
	// A CNAME shares its name with no other record (RFC 1034 §3.6.2,
	// RFC 2181 §10.1): the API refuses either order (README).
	const sameName = " For more details, refer to <https://developers.cloudflare.com/dns/manage-dns-records/troubleshooting/records-with-same-name/>."
	for _, o := range f.records {
		if o.ZoneID != z.ID || o.Name != rec.Name {
			continue
		}
		if rec.Type == "CNAME" {
			fail(w, http.StatusBadRequest, apiError{Code: 81053, Message: "An A, AAAA, or CNAME record with that host already exists." + sameName})
			return
		}
		if o.Type == "CNAME" {
			fail(w, http.StatusBadRequest, apiError{Code: 81054, Message: "A CNAME record with that host already exists." + sameName})
			return
		}
	}
	for _, o := range f.records {
		if o.ZoneID == z.ID && o.Type == rec.Type && o.Name == rec.Name && strings.EqualFold(o.Content, rec.Content) {
			fail(w, http.StatusBadRequest, apiError{Code: 81058, Message: "An identical record already exists."})
			return
		}
	}
	rec.ID = f.newID(fmt.Sprintf("record:%s:%s:%s", rec.Name, rec.Type, rec.Content))
	f.records = append(f.records, &rec)
	reply(w, http.StatusOK, envelope{Success: true, Result: f.recordJSON(&rec, z)})
}

// --- helpers ---

func (f *Fake) newID(seed string) string {
	f.serial++
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s", f.serial, seed)))
	return hex.EncodeToString(sum[:16])
}

func (f *Fake) zoneByName(name string) (zone, bool) {
	for _, z := range f.zones {
		if z.Name == name {
			return z, true
		}
	}
	return zone{}, false
}

func (f *Fake) zoneByID(id string) (zone, bool) {
	for _, z := range f.zones {
		if z.ID == id {
			return z, true
		}
	}
	return zone{}, false
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }

// absName turns a record name as the API accepts it (full, relative to the
// zone, or "@") into the full name without trailing dot.
func absName(n, zoneName string) string {
	n = normName(n)
	switch {
	case n == "@" || n == zoneName:
		return zoneName
	case strings.HasSuffix(n, "."+zoneName):
		return n
	default:
		return n + "." + zoneName
	}
}

func tlsaContent(r Record) string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, r.Certificate)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
