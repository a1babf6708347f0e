package dnsupdate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file holds the HTTP side of the Cloudflare provider: the v4 response
// envelope, the error type and its classes, and the retry loop for 429 and
// 5xx answers. See cloudflare.go for why it does not go through
// libdns/cloudflare.

// Error classes of the Cloudflare provider. A *CloudflareError matches exactly
// one of them with errors.Is, so callers (danectl's exit codes) branch on the
// class and never on status codes or message text.
var (
	// ErrCloudflareAuth: the API refused the token (HTTP 401/403, or a 400
	// naming a missing or malformed Authorization header), or no token is
	// configured.
	ErrCloudflareAuth = errors.New("cloudflare: authentication failed")
	// ErrCloudflareZone: no zone visible to the token contains the owner
	// (the Cloudflare counterpart of NOTAUTH), or the zone id is unknown.
	ErrCloudflareZone = errors.New("cloudflare: zone not found")
	// ErrCloudflareRequest: the API rejected the request itself (any other
	// 4xx, e.g. a DNS validation error).
	ErrCloudflareRequest = errors.New("cloudflare: request rejected")
	// ErrCloudflareUnavailable: 429 or 5xx answers, or transport errors,
	// that persisted through every retry the budget allowed.
	ErrCloudflareUnavailable = errors.New("cloudflare: service unavailable")
)

// CloudflareError is a failed Cloudflare API call. Status is the HTTP status
// (0 when no answer was received), Code and Message the first entry of the
// v4 envelope's "errors" array (Message followed by its "error_chain"
// messages). Zone and Owner name what the call was about when known
// (absolute names, "" otherwise). Err is the transport error, if any.
// Attempts counts the requests sent, retries included.
//
// errors.Is(err, ErrCloudflareAuth|Zone|Request|Unavailable) tells the class.
// The message never contains the API token.
type CloudflareError struct {
	Op       string // what was being done: "look up zone", "list records", "add record", "delete record"
	Status   int
	Code     int
	Message  string
	Zone     string
	Owner    string
	Attempts int
	Err      error

	class error  // set when the class is not derived from Status and Code
	note  string // why retrying stopped early
}

// Error returns "cloudflare: <op> at <owner> in zone <zone>: HTTP <status>
// (code <code>): <message>".
func (e *CloudflareError) Error() string {
	var b strings.Builder
	b.WriteString("cloudflare: ")
	b.WriteString(e.Op)
	if e.Owner != "" {
		fmt.Fprintf(&b, " at %q", e.Owner)
	}
	if e.Zone != "" {
		fmt.Fprintf(&b, " in zone %q", e.Zone)
	}
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
		if e.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", e.Code)
		}
	case e.Code != 0:
		fmt.Fprintf(&b, ": code %d", e.Code)
	}
	switch {
	case e.Message == "":
	case e.Status != 0:
		fmt.Fprintf(&b, ": %q", e.Message) // the server's words, quoted
	default:
		b.WriteString(": " + e.Message) // ours
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if e.note != "" {
		b.WriteString("; " + e.note)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *CloudflareError) Unwrap() error { return e.Err }

// Is reports whether target is the class of e (one of ErrCloudflareAuth,
// ErrCloudflareZone, ErrCloudflareRequest, ErrCloudflareUnavailable).
func (e *CloudflareError) Is(target error) bool { return target != nil && target == e.Class() }

// Class returns the sentinel error class of e.
func (e *CloudflareError) Class() error {
	if e.class != nil {
		return e.class
	}
	return cfClassify(e.Status, e.Code, e.Err)
}

// Cloudflare API error codes the provider branches on. Where each comes from
// is listed in internal/cloudflarefake/README.md.
const (
	cfCodeIdenticalRecord = 81058 // "An identical record already exists." (POST, 400)
	cfCodeRecordNotFound  = 81044 // "Record does not exist." (DELETE, 404)
	cfCodeNoRoute         = 7003  // "Could not route to …, perhaps your object identifier is invalid?"
)

// cfAuthCodes are the v4 codes that mean the credentials, not the request,
// are wrong even when the status is 400: 9106 missing Authorization header,
// 6003/6111 malformed Authorization header, 9109 invalid access token,
// 10000 authentication error.
var cfAuthCodes = map[int]bool{9106: true, 6003: true, 6111: true, 9109: true, 10000: true}

func cfClassify(status, code int, err error) error {
	switch {
	case status == 0 && err != nil:
		return ErrCloudflareUnavailable
	case status == http.StatusUnauthorized || status == http.StatusForbidden || cfAuthCodes[code]:
		return ErrCloudflareAuth
	case code == cfCodeNoRoute:
		return ErrCloudflareZone
	case status == http.StatusTooManyRequests || status >= 500:
		return ErrCloudflareUnavailable
	default:
		return ErrCloudflareRequest
	}
}

// cfEnvelope is the v4 response envelope: {"success", "errors", "messages",
// "result", "result_info"}.
type cfEnvelope struct {
	Success    bool            `json:"success"`
	Errors     []cfAPIError    `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *cfResultInfo   `json:"result_info"`
}

type cfAPIError struct {
	Code       int          `json:"code"`
	Message    string       `json:"message"`
	ErrorChain []cfAPIError `json:"error_chain"`
}

// cfResultInfo is the pagination block of list answers.
type cfResultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// Retry defaults: five attempts in all, at most one minute spent waiting.
// lego kills hooks after two minutes, so a run that cannot finish inside the
// budget fails early and the next run (timer or renewal) repairs the rest.
const (
	cfDefaultMaxRetries   = 4
	cfDefaultMaxRetryWait = time.Minute
	cfBackoffBase         = time.Second
	cfBackoffCap          = 20 * time.Second
	cfMaxBody             = 8 << 20 // bytes read from one answer
)

// cfRequest is one API call: method, path below BaseURL, query, JSON body.
type cfRequest struct {
	op     string
	method string
	path   string
	query  url.Values
	body   any
	token  string // "" means APIToken
	zone   string
	owner  string
}

// do sends r, retrying 429 and 5xx answers and transport errors, and decodes
// the envelope's result into out (when out is not nil). It returns the
// envelope of the successful answer or a *CloudflareError (or the context's
// error, wrapped, when ctx ends).
func (c *Cloudflare) do(ctx context.Context, r cfRequest, out any) (*cfEnvelope, error) {
	token := r.token
	if token == "" {
		token = c.APIToken
	}
	if err := cfCheckToken(token); err != nil {
		msg := err.Error()
		if token == "" {
			msg = "no API token configured"
		}
		return nil, &CloudflareError{Op: r.op, Zone: r.zone, Owner: r.owner, Message: msg, class: ErrCloudflareAuth}
	}
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("cloudflare: %s: encode request: %w", r.op, err)
		}
	}
	u := strings.TrimSuffix(c.baseURL(), "/") + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	maxRetries := c.MaxRetries
	if maxRetries == 0 {
		maxRetries = cfDefaultMaxRetries
	} else if maxRetries < 0 {
		maxRetries = 0
	}
	budget := c.MaxRetryWait
	if budget <= 0 {
		budget = cfDefaultMaxRetryWait
	}
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		env, cerr, retryAfter, retryable := c.once(ctx, r, u, body, token, out)
		if cerr == nil {
			return env, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cloudflare: %s: %w", r.op, ctx.Err())
		}
		cerr.Attempts = attempt
		if !retryable || attempt > maxRetries {
			return nil, cerr
		}
		wait := retryAfter
		if wait < 0 {
			wait = cfBackoff(attempt)
		}
		if waited+wait > budget {
			cerr.note = fmt.Sprintf("not retried: waiting %s more would exceed the %s retry budget", wait, budget)
			return nil, cerr
		}
		if err := c.pause(ctx, wait); err != nil {
			return nil, fmt.Errorf("cloudflare: %s: waiting to retry after HTTP %d: %w", r.op, cerr.Status, err)
		}
		waited += wait
	}
}

// once sends one request. It returns the envelope on success; otherwise the
// error, the server's Retry-After (negative when absent) and whether the
// failure is worth retrying.
func (c *Cloudflare) once(ctx context.Context, r cfRequest, u string, body []byte, token string, out any) (*cfEnvelope, *CloudflareError, time.Duration, bool) {
	fail := func(status, code int, msg string, err error) *CloudflareError {
		return &CloudflareError{Op: r.op, Status: status, Code: code, Message: c.redact(msg), Zone: r.zone, Owner: r.owner, Err: err}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = cfDefaultTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errCloudflareTimeout{timeout})
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return nil, fail(0, 0, "", err), -1, false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "danehook")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := c.HTTPClient
	if client == nil {
		client = cfDefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); ctx.Err() != nil && errors.As(cause, new(errCloudflareTimeout)) {
			err = cause // our per-request timeout, not the caller's deadline
		}
		return nil, fail(0, 0, "", cfStripURL(err)), -1, true
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cfMaxBody))
	if err != nil {
		return nil, fail(resp.StatusCode, 0, "", fmt.Errorf("read answer: %w", err)), -1, true
	}
	retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	retryAfter := time.Duration(-1)
	if retryable {
		retryAfter = cfRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	var env cfEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		// Not the v4 envelope: an edge error page (502/503 HTML) or garbage.
		return nil, fail(resp.StatusCode, 0, cfSnippet(raw), errors.New("answer is not a Cloudflare API envelope")), retryAfter, retryable
	}
	if resp.StatusCode >= 300 || !env.Success {
		code, msg := 0, ""
		if len(env.Errors) > 0 {
			code, msg = env.Errors[0].Code, env.Errors[0].text()
			for _, e := range env.Errors[1:] {
				msg += "; " + e.text()
			}
		}
		status := resp.StatusCode
		if status < 300 {
			// success:false with a 2xx status: treat as a rejected request.
			status = http.StatusBadRequest
		}
		return nil, fail(status, code, msg, nil), retryAfter, retryable
	}
	if out != nil && len(env.Result) > 0 && string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return nil, fail(resp.StatusCode, 0, "", fmt.Errorf("decode result: %w", err)), -1, false
		}
	}
	return &env, nil, -1, false
}

// text returns the message followed by its error chain: "DNS Validation
// Error: usage is a required data field.".
func (e cfAPIError) text() string {
	s := e.Message
	for _, c := range e.ErrorChain {
		s += ": " + c.text()
	}
	return s
}

// cfDefaultTimeout bounds one request when Cloudflare.Timeout is 0.
const cfDefaultTimeout = 30 * time.Second

// errCloudflareTimeout is the cause of a request's context when
// Cloudflare.Timeout ran out (told apart from the caller's deadline).
type errCloudflareTimeout struct{ d time.Duration }

func (e errCloudflareTimeout) Error() string {
	return fmt.Sprintf("no answer within the %s timeout (the provider's timeout setting)", e.d)
}

var cfDefaultClient = &http.Client{Timeout: cfDefaultTimeout}

func (c *Cloudflare) baseURL() string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	return CloudflareBaseURL
}

// pause waits d or until ctx ends. Tests replace it through c.sleep.
func (c *Cloudflare) pause(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		return c.sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cfBackoff is the wait before retry n (1-based) when the server gave no
// Retry-After: base·2^(n-1) capped at cfBackoffCap, with jitter in [½, 1].
func cfBackoff(n int) time.Duration {
	d := cfBackoffBase << min(n-1, 10)
	d = min(d, cfBackoffCap)
	return d/2 + rand.N(d/2+1)
}

// cfRetryAfter parses a Retry-After header (RFC 9110 §10.2.3): delay-seconds
// or an HTTP-date. It returns a negative duration when the header is absent
// or malformed. Cloudflare sends seconds, rounded up.
func cfRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return -1
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0).Round(time.Second)
	}
	return -1
}

// cfStripURL drops the URL from a *url.Error: the message stays short and
// never carries query strings.
func cfStripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// cfSnippet returns the start of a non-JSON answer as one line.
func cfSnippet(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// redact removes the configured tokens from s (server messages are echoed
// into errors; a server that quoted the token must not leak it).
func (c *Cloudflare) redact(s string) string {
	for _, t := range []string{c.APIToken, c.ZoneToken} {
		if len(t) >= 4 {
			s = strings.ReplaceAll(s, t, "[redacted]")
		}
	}
	return s
}
