package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"

	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var mNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const (
	mOwner = "_25._tcp.mail.example.test."
	spkiA  = "4ab6ed73aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	spkiB  = "9f3c0000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// healthy returns a status in which everything is aged and served: one
// lineage with a 90-day leaf that expires in 60 days, one owner on two
// servers.
func healthy(t *testing.T) *deploy.Status {
	t.Helper()
	rec, err := tlsa.Parse("3 1 1 " + spkiA)
	if err != nil {
		t.Fatal(err)
	}
	srv := func(name, addr string) propagate.ServerState {
		return propagate.ServerState{Server: propagate.Server{Name: name, Addr: addr}, Reachable: true, Serial: 7, Records: []tlsa.Record{rec}, TTL: 300}
	}
	return &deploy.Status{
		Lineages: []deploy.LineageStatus{{
			Name: "mail", ChainFile: "/etc/postfix/danehook/mail.pem", Served: spkiA,
			ServedNotBefore: mNow.Add(-30 * 24 * time.Hour), ServedNotAfter: mNow.Add(60 * 24 * time.Hour),
			Verified: "2026-12-01T11:00:00Z", VerifiedAt: mNow.Add(-time.Hour),
			Presented: []string{"127.0.0.1:25: mail.example.test (the installed chain)"},
		}},
		Owners: []deploy.OwnerStatus{{
			Owner: mOwner, Zone: "example.test.", Provider: "primary", Lineages: []string{"mail"},
			Observation: &propagate.Observation{Zone: "example.test.", Owner: mOwner, Primary: "127.0.0.1:53", PrimarySerial: 7, NegativeTTL: 300,
				Servers: []propagate.ServerState{srv("ns1.example.test.", "127.0.0.1:53"), srv("ns2.example.test.", "127.0.0.2:53")}},
			Records: propagate.SetStatus{Owner: mOwner, Aged: true, AgedAt: mNow.Add(-time.Hour),
				Records: []propagate.Status{{Owner: mOwner, Record: rec.String(), Aged: true, AgedAt: mNow.Add(-time.Hour), TTL: 300, Serving: []string{"127.0.0.1:53", "127.0.0.2:53"}}}},
			DNSSEC: &propagate.DNSSECStatus{Zone: "example.test.", Signed: true, DS: propagate.Yes, Validated: propagate.Yes, Explanation: "signed"},
			Owned:  []string{rec.String()},
		}},
	}
}

// pend adds a pending switch to st's lineage, recorded since ago, expected
// safe at safeAt (zero: blocked).
func pend(st *deploy.Status, ago time.Duration, safeAt time.Time) {
	l := &st.Lineages[0]
	l.Pending = &deploy.Pending{SPKI: spkiB, Since: mNow.Add(-ago), SafeAt: safeAt}
	l.Switch = &deploy.SwitchDecision{Lineage: l.Name, Safe: false, SafeAt: safeAt}
	o := &st.Owners[0]
	o.Records.Aged = false
	o.Records.AgedAt = safeAt
	o.Records.Records = append(o.Records.Records, propagate.Status{Owner: mOwner, Record: "3 1 1 " + spkiB, AgedAt: safeAt})
}

// perfRE is the perfdata grammar of the Monitoring Plugins guidelines
// (03.Output.md): 'label'=value[UOM][;warn[;crit[;min[;max]]]], value a
// decimal number or "U"; warn and crit range expressions.
var perfRE = regexp.MustCompile(`^'([^'=]+)'=(U|-?[0-9]+(?:\.[0-9]+)?)([a-zA-Z%]*)((?:;[^;]*){0,4})$`)
var rangeRE = regexp.MustCompile(`^@?(?:(?:~|-?[0-9.]+):)?(?:-?[0-9.]+)?$`)

// parsePlugin splits plugin output into state word, text, perfdata values by label.
func parsePlugin(t *testing.T, out string) (state, text string, perf map[string]string, fields map[string][]string) {
	t.Helper()
	first, _, _ := strings.Cut(out, "\n")
	m := regexp.MustCompile(`^DANEHOOK (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]*?)(?: \| (.*))?$`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("status line %q is not \"DANEHOOK STATE - text | perfdata\"", first)
	}
	perf, fields = map[string]string{}, map[string][]string{}
	for _, d := range strings.Fields(m[3]) {
		pm := perfRE.FindStringSubmatch(d)
		if pm == nil {
			t.Fatalf("perfdata %q does not follow 'label'=value[UOM];warn;crit;min;max", d)
		}
		perf[pm[1]] = pm[2]
		fs := strings.Split(strings.TrimPrefix(pm[4], ";"), ";")
		for i, f := range fs {
			if i < 2 && f != "" && !rangeRE.MatchString(f) {
				t.Errorf("perfdata %q: %q is not a range expression", d, f)
			}
		}
		fields[pm[1]] = fs
	}
	return m[1], m[2], perf, fields
}

func TestPluginEvaluate(t *testing.T) {
	twelve := 12 * time.Hour
	defaults := thresholds{WarnPending: &twelve, WarnLagging: new(0)}
	for _, tc := range []struct {
		name      string
		edit      func(st *deploy.Status)
		timer     *timerReport
		verr      error
		th        *thresholds
		state     string
		text      string            // in the status line
		perf      map[string]string // label → value
		perfField map[string]string // label → ";warn;crit" as printed
	}{
		{name: "all aged and served", state: "OK", text: "every served chain matches an aged record",
			perf:      map[string]string{"seconds_until_aged": "0", "days_until_expiry": "60", "servers_lagging": "0", "records_unowned_unmatched": "0", "seconds_pending": "0"},
			perfField: map[string]string{"days_until_expiry": "18:;9:"}},
		{name: "served chain matches no aged record", state: "CRITICAL", text: "matches no aged record",
			edit: func(st *deploy.Status) {
				st.Lineages[0].Unprotected = []string{mOwner + ": the served chain (key 3 1 1 9f3c…) matches no aged record (records 3 1 1 4ab6…)"}
			}},
		{name: "live handshake does not match", state: "CRITICAL", text: "live STARTTLS check",
			verr: fmt.Errorf("lineage \"mail\": live chain at 127.0.0.1:25 matches no aged record: %w", deploy.ErrVerify)},
		{name: "another run holds the lock", state: "UNKNOWN", verr: fmt.Errorf("lock: %w", state.ErrLocked)},
		{name: "stale issuer set", state: "WARNING", text: `lineage mail: the chain is issued by "CN=E7", which is not in the issuer set`,
			edit: func(st *deploy.Status) {
				st.Lineages[0].Warnings = []string{`the chain is issued by "CN=E7", which is not in the issuer set`}
			}},
		{name: "DANE-TA records do not apply to the host", state: "WARNING", text: `lineage mail: host mail.example.test (` + mOwner + `): the served chain's DANE-TA 2 1 1`,
			edit: func(st *deploy.Status) {
				st.Lineages[0].Warnings = []string{`host mail.example.test (` + mOwner + `): the served chain's DANE-TA 2 1 1 86cb57ec91d0f4fb… does not apply to host mail.example.test: the leaf's subjectAltName dNSNames ["smtp.example.test"] do not name "mail.example.test" (DANE-TA needs a name match, RFC 7672 §3.2.3)`}
			}},
		{name: "Postfix reads other files", state: "WARNING", text: `lineage mail: lineage "mail": postfix does not read the lineage's chain file`,
			edit: func(st *deploy.Status) {
				st.Lineages[0].Err = `lineage "mail": postfix does not read the lineage's chain file: Postfix serves /etc/ssl/certs/ssl-cert-snakeoil.pem, …; run: postconf -e 'smtpd_tls_chain_files = /etc/postfix/danehook/mail.pem' && postfix reload`
			}},
		{name: "pending switch cannot become safe before expiry", state: "CRITICAL", text: "before the served certificate expires",
			edit: func(st *deploy.Status) {
				pend(st, time.Hour, mNow.Add(2*time.Hour))
				st.Lineages[0].ExpiryErr = "the pending switch becomes safe at …, not before the served certificate expires at …"
			}},
		{name: "pending switch within the limit", state: "OK", text: "a switch is pending for 1h0m0s",
			edit: func(st *deploy.Status) { pend(st, time.Hour, mNow.Add(10*time.Minute)) },
			perf: map[string]string{"seconds_until_aged": "600", "seconds_pending": "3600"}, perfField: map[string]string{"seconds_pending": "43200;"}},
		{name: "pending switch older than --warning-pending", state: "WARNING", text: "pending for 13h0m0s (warning above 12h0m0s)",
			edit: func(st *deploy.Status) { pend(st, 13*time.Hour, mNow.Add(10*time.Minute)) }},
		{name: "pending switch older than --critical-pending", state: "CRITICAL", text: "critical above 24h0m0s",
			th:   &thresholds{WarnPending: &twelve, CritPending: new(24 * time.Hour)},
			edit: func(st *deploy.Status) { pend(st, 25*time.Hour, time.Time{}) }, perf: map[string]string{"seconds_until_aged": "U"}},
		{name: "pending switch, timer not enabled", state: "WARNING", text: "systemctl enable --now danehook.timer",
			edit:  func(st *deploy.Status) { pend(st, time.Minute, mNow.Add(10*time.Minute)) },
			timer: timerCheckWith(t, timerDisabled, "disabled")},
		{name: "pending switch, timer enabled", state: "OK",
			edit:  func(st *deploy.Status) { pend(st, time.Minute, mNow.Add(10*time.Minute)) },
			timer: timerCheckWith(t, timerEnabled, "enabled")},
		{name: "expiry within 20% of the lifetime (default)", state: "WARNING", text: "expires in 15.0 days",
			edit: func(st *deploy.Status) { expires(st, 15*24*time.Hour) }},
		{name: "expiry within 10% of the lifetime (default)", state: "CRITICAL", text: "critical below",
			edit: func(st *deploy.Status) { expires(st, 5*24*time.Hour) }},
		{name: "6-day certificate, 2 days left: fine", state: "OK",
			edit: func(st *deploy.Status) {
				st.Lineages[0].ServedNotBefore, st.Lineages[0].ServedNotAfter = mNow.Add(-4*24*time.Hour), mNow.Add(2*24*time.Hour)
			}, perfField: map[string]string{"days_until_expiry": "1.2:;0.6:"}},
		{name: "expiry within --warning-expiry", state: "WARNING", text: "warning below 90",
			th: &thresholds{WarnExpiry: new(90.0)}, perfField: map[string]string{"days_until_expiry": "90:;9:"}},
		{name: "a lagging secondary", state: "WARNING", text: "1 server(s) lag",
			edit: func(st *deploy.Status) { st.Owners[0].Observation.Servers[1].Lagging = true },
			perf: map[string]string{"servers_lagging": "1"}, perfField: map[string]string{"servers_lagging": "0;"}},
		{name: "a lagging secondary, --warning-lagging off", state: "OK", th: &thresholds{},
			edit: func(st *deploy.Status) { st.Owners[0].Observation.Servers[1].Lagging = true }},
		{name: "an unreachable secondary", state: "WARNING", text: "do not answer",
			edit: func(st *deploy.Status) {
				st.Owners[0].Observation.Servers[1].Reachable = false
				st.Owners[0].Observation.Servers[1].Err = "i/o timeout"
			}, perf: map[string]string{"servers_unreachable": "1"}},
		{name: "unmatched records counted, no limit by default", state: "OK",
			edit: func(st *deploy.Status) { st.Owners[0].Unmatched = []string{"3 0 1 abcd", "3 1 1 ef01"} },
			perf: map[string]string{"records_unowned_unmatched": "2"}},
		{name: "unmatched records above --critical-unmatched", state: "CRITICAL", th: &thresholds{CritUnmatched: new(1)},
			edit: func(st *deploy.Status) { st.Owners[0].Unmatched = []string{"3 0 1 abcd", "3 1 1 ef01"} }},
		{name: "unsigned zone", state: "WARNING", text: "not DNSSEC-signed",
			edit: func(st *deploy.Status) { st.Owners[0].DNSSEC.Signed = false }},
		{name: "CRITICAL is not hidden by UNKNOWN", state: "CRITICAL", text: "matches no aged record (and 1 more)",
			verr: fmt.Errorf("lock: %w", state.ErrLocked),
			edit: func(st *deploy.Status) {
				st.Lineages[0].Unprotected = []string{mOwner + ": the served chain matches no aged record"}
			}},
		{name: "several problems: the gravest first", state: "CRITICAL", text: "matches no aged record (and 2 more)",
			edit: func(st *deploy.Status) {
				st.Owners[0].DNSSEC.Signed = false
				st.Owners[0].Observation.Servers[1].Lagging = true
				st.Lineages[0].Unprotected = []string{mOwner + ": the served chain matches no aged record"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthy(t)
			if tc.edit != nil {
				tc.edit(st)
			}
			th := defaults
			if tc.th != nil {
				th = *tc.th
			}
			rep := newStatusReport(st, mNow, tc.timer)
			res := evaluatePlugin(&rep, &liveReport{OK: tc.verr == nil, Reasons: []string{"127.0.0.1:25 ok"}}, tc.verr, th, mNow)
			out := res.String()
			state, text, perf, fields := parsePlugin(t, out)
			if state != tc.state || pluginStateNames[res.State] != state {
				t.Fatalf("state %s (code %d), want %s:\n%s", state, res.State, tc.state, out)
			}
			if !strings.Contains(text, tc.text) {
				t.Errorf("status line text %q, want it to contain %q", text, tc.text)
			}
			for _, label := range []string{"seconds_until_aged", "days_until_expiry", "servers_lagging", "records_unowned_unmatched"} {
				if _, ok := perf[label]; !ok {
					t.Errorf("perfdata lacks %s:\n%s", label, out)
				}
			}
			for label, want := range tc.perf {
				if perf[label] != want {
					t.Errorf("perfdata %s = %q, want %q:\n%s", label, perf[label], want, out)
				}
			}
			for label, want := range tc.perfField {
				if got := strings.Join(fields[label][:min(2, len(fields[label]))], ";"); got != want {
					t.Errorf("perfdata %s warn;crit = %q, want %q:\n%s", label, got, want, out)
				}
			}
			if n := strings.Count(out, "\n"); n != len(res.Problems)+boolInt(len(res.Problems) == 0) {
				t.Errorf("%d lines for %d problems:\n%s", n, len(res.Problems), out)
			}
		})
	}
}

// expires makes st's 90-day served leaf expire in left.
func expires(st *deploy.Status, left time.Duration) {
	st.Lineages[0].ServedNotAfter = mNow.Add(left)
	st.Lineages[0].ServedNotBefore = st.Lineages[0].ServedNotAfter.Add(-90 * 24 * time.Hour)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// timerCheckWith runs timerCheck with a probe that answers state.
func timerCheckWith(t *testing.T, state, word string) *timerReport {
	t.Helper()
	old := probeTimer
	defer func() { probeTimer = old }()
	probeTimer = func(_ context.Context, unit string) (string, string) { return state, word }
	return timerCheck(t.Context(), defaultTimerUnit, true)
}

func TestTimerCheck(t *testing.T) {
	old := probeTimer
	defer func() { probeTimer = old }()
	calls := 0
	probeTimer = func(_ context.Context, unit string) (string, string) { calls++; return timerDisabled, "masked" }
	if tr := timerCheck(t.Context(), defaultTimerUnit, false); tr != nil || calls != 0 {
		t.Errorf("nothing pending: %+v, %d probes; want none", tr, calls)
	}
	if tr := timerCheck(t.Context(), "", true); tr != nil || calls != 0 {
		t.Errorf("--timer-unit \"\": %+v, %d probes; want none", tr, calls)
	}
	tr := timerCheck(t.Context(), "other.timer", true)
	if tr == nil || tr.State != timerDisabled || !strings.Contains(tr.Reason, "masked") || !strings.Contains(tr.Reason, "systemctl enable --now other.timer") {
		t.Errorf("pending, masked timer: %+v", tr)
	}
	probeTimer = func(_ context.Context, unit string) (string, string) {
		return timerUnknown, "systemd is not the init system"
	}
	if tr := timerCheck(t.Context(), defaultTimerUnit, true); tr == nil || tr.State != timerUnknown || tr.Reason != "" {
		t.Errorf("no systemd: %+v, want state unknown and no warning", tr)
	}
	// The real probe, on this machine: it must not claim "disabled" without systemd.
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		if s, _ := systemctlIsEnabled(t.Context(), defaultTimerUnit); s != timerUnknown {
			t.Errorf("without /run/systemd/system the probe says %q, want unknown", s)
		}
	}
}

// TestMetricsTextfile parses what tick writes with the Prometheus text
// parser (prometheus/common/expfmt) and checks families, types and values.
func TestMetricsTextfile(t *testing.T) {
	st := healthy(t)
	pend(st, time.Hour, mNow.Add(10*time.Minute))
	st.Owners[0].Observation.Servers[1].Lagging = true
	st.Owners[0].Unmatched = []string{"3 0 1 abcd"}
	st.Lineages = append(st.Lineages, deploy.LineageStatus{Name: `odd "name"\`, ChainFile: "/x.pem", Err: "chain file unreadable"})
	rep := newStatusReport(st, mNow, nil)
	path := filepath.Join(t.TempDir(), "danehook.prom")
	if err := writeMetricsFile(path, tickMetrics(mNow, nil, &rep, nil)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("metrics file: %v, mode %v; want 0644", err, fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(left) != 1 {
		t.Errorf("files in the directory: %v; want only the .prom file (the temporary file renamed)", left)
	}
	fams := parseProm(t, path)
	for name, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" || !strings.HasPrefix(name, "danehook_") {
			t.Errorf("%s: type %v, help %q; want a documented danehook_ gauge", name, f.GetType(), f.GetHelp())
		}
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"danehook_tick_success", nil, 1},
		{"danehook_status_success", nil, 1},
		{"danehook_tick_timestamp_seconds", nil, float64(mNow.Unix())},
		{"danehook_lineage_protected", map[string]string{"lineage": "mail"}, 1},
		{"danehook_lineage_served_not_after_timestamp_seconds", map[string]string{"lineage": "mail"}, float64(mNow.Add(60 * 24 * time.Hour).Unix())},
		{"danehook_lineage_days_until_expiry", map[string]string{"lineage": "mail"}, 60},
		{"danehook_lineage_pending_switch", map[string]string{"lineage": "mail"}, 1},
		{"danehook_lineage_pending_seconds", map[string]string{"lineage": "mail"}, 3600},
		{"danehook_lineage_seconds_until_safe", map[string]string{"lineage": "mail"}, 600},
		{"danehook_lineage_last_verified_timestamp_seconds", map[string]string{"lineage": "mail"}, float64(mNow.Add(-time.Hour).Unix())},
		{"danehook_lineage_error", map[string]string{"lineage": `odd "name"\`}, 1},
		{"danehook_owner_seconds_until_aged", map[string]string{"owner": mOwner, "zone": "example.test."}, 600},
		{"danehook_owner_servers", map[string]string{"owner": mOwner, "zone": "example.test."}, 2},
		{"danehook_owner_servers_lagging", map[string]string{"owner": mOwner, "zone": "example.test."}, 1},
		{"danehook_owner_records_unowned_unmatched", map[string]string{"owner": mOwner, "zone": "example.test."}, 1},
		{"danehook_owner_aged", map[string]string{"owner": mOwner, "zone": "example.test."}, 0},
	}
	for _, w := range want {
		got, ok := sample(fams, w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if _, ok := sample(fams, "danehook_lineage_last_verified_timestamp_seconds", map[string]string{"lineage": `odd "name"\`}); ok {
		t.Errorf("a lineage never verified has a last-verified sample")
	}

	// A blocked switch: NaN, not a made-up number. A failed tick and status.
	st = healthy(t)
	pend(st, time.Hour, time.Time{})
	rep = newStatusReport(st, mNow, nil)
	if err := writeMetricsFile(path, tickMetrics(mNow, fmt.Errorf("postfix reload failed"), &rep, nil)); err != nil {
		t.Fatal(err)
	}
	fams = parseProm(t, path)
	if v, _ := sample(fams, "danehook_lineage_seconds_until_safe", map[string]string{"lineage": "mail"}); !math.IsNaN(v) {
		t.Errorf("blocked switch: seconds_until_safe = %v, want NaN", v)
	}
	if v, _ := sample(fams, "danehook_tick_success", nil); v != 0 {
		t.Errorf("failed tick: tick_success = %v, want 0", v)
	}
	if err := writeMetricsFile(path, tickMetrics(mNow, nil, nil, fmt.Errorf("locked"))); err != nil {
		t.Fatal(err)
	}
	fams = parseProm(t, path)
	if v, ok := sample(fams, "danehook_status_success", nil); !ok || v != 0 || fams["danehook_lineage_protected"] != nil {
		t.Errorf("status failed: status_success = %v (%v), lineage families %v; want 0 and none", v, ok, fams["danehook_lineage_protected"])
	}
}

func parseProm(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		data, _ := os.ReadFile(path)
		t.Fatalf("the Prometheus text parser rejects the metrics file: %v\n%s", err, data)
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			if m.TimestampMs != nil {
				t.Errorf("%s has a timestamp: the textfile collector rejects it", fam.GetName())
			}
		}
	}
	return fams
}

// sample returns the value of the sample of family name with exactly labels.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) == len(labels) && (len(labels) == 0 || reflect.DeepEqual(got, labels)) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestJSONSchema encodes status and check reports and decodes them into
// the schema README.md documents ("JSON output"), refusing unknown fields;
// every time must be RFC 3339 UTC, and README must name every field.
func TestJSONSchema(t *testing.T) {
	st := healthy(t)
	pend(st, time.Hour, mNow.Add(10*time.Minute))
	st.Lineages[0].Next = &deploy.NextKey{SPKI: spkiB, Algorithm: "ecdsa-p256", Staged: mNow.Add(-time.Hour), File: "/var/lib/danehook/next.key"}
	st.Lineages[0].Unprotected = []string{"x"}
	st.Owners[0].Unmatched = []string{"3 0 1 abcd"}
	st.Owners[0].Held = []string{"3 1 1 …: reason"}
	tr := &timerReport{Unit: defaultTimerUnit, State: timerDisabled, Reason: "…"}
	var out bytes.Buffer
	if err := writeJSON(&out, newStatusReport(st, mNow, tr)); err != nil {
		t.Fatal(err)
	}
	var sr documentedStatus
	decodeStrict(t, out.Bytes(), &sr)
	if sr.Schema != 1 || sr.Time != "2026-12-01T12:00:00Z" || len(sr.Lineages) != 1 || sr.Lineages[0].Pending == nil ||
		sr.Lineages[0].Pending.SecondsUntilSafe == nil || *sr.Lineages[0].Pending.SecondsUntilSafe != 600 ||
		*sr.Lineages[0].DaysUntilExpiry != 60 || sr.Lineages[0].Protected || sr.Owners[0].Servers[0].Records[0] != "3 1 1 "+spkiA {
		t.Errorf("decoded status: %s", out.String())
	}
	checkTimes(t, out.Bytes())

	out.Reset()
	if err := writeJSON(&out, checkReport{Schema: jsonSchema, Time: rfc3339(mNow), Status: newStatusReport(st, mNow, nil), Live: liveReport{Reasons: []string{}, Error: "x"}}); err != nil {
		t.Fatal(err)
	}
	var cr documentedCheck
	decodeStrict(t, out.Bytes(), &cr)
	checkTimes(t, out.Bytes())

	// plan --json: an array of owners.
	rec, _ := tlsa.Parse("3 1 1 " + spkiA)
	rr := dnsupdate.RR{Owner: mOwner, TTL: 300, Record: rec}
	plans := []*deploy.OwnerPlan{{Owner: mOwner, Zone: "example.test.", Provider: "primary", TTL: 300, Lineages: []string{"mail"},
		Desired: []tlsa.Record{rec}, Changes: dnsupdate.Plan{{Op: dnsupdate.Add, RR: rr}}, Held: []dnsupdate.RR{rr}}}
	out.Reset()
	if err := printPlans(&out, plans, true, false); err != nil {
		t.Fatal(err)
	}
	var pl []struct {
		Owner    string   `json:"owner"`
		Zone     string   `json:"zone"`
		Provider string   `json:"provider"`
		TTL      uint32   `json:"ttl"`
		Lineages []string `json:"lineages"`
		Desired  []string `json:"desired"`
		Changes  []struct {
			Op     string `json:"op"`
			Record string `json:"record"`
			TTL    uint32 `json:"ttl"`
		} `json:"changes"`
		Held []string `json:"held"`
	}
	decodeStrict(t, out.Bytes(), &pl)
	if len(pl) != 1 || len(pl[0].Changes) != 1 || pl[0].Changes[0].Op != "add" || pl[0].Changes[0].Record != rec.String() {
		t.Errorf("plan --json: %s", out.String())
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## JSON output")
	if !ok {
		t.Fatal(`README.md has no "## JSON output" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, name := range append(jsonNames(reflect.TypeOf(checkReport{})), jsonNames(reflect.TypeOf(planJSON{}))...) {
		if !strings.Contains(section, "`"+name+"`") && !strings.Contains(section, "`"+name+"[]`") {
			t.Errorf("README's JSON output section does not document the field %q", name)
		}
	}
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output does not decode into the documented schema: %v\n%s", err, data)
	}
}

// checkTimes asserts that every string that parses as a time is RFC 3339 UTC.
func checkTimes(t *testing.T, data []byte) {
	t.Helper()
	for _, m := range regexp.MustCompile(`"(\d{4}-\d\d-\d\d[T ][^"]*)"`).FindAllStringSubmatch(string(data), -1) {
		if tm, err := time.Parse(time.RFC3339, m[1]); err != nil || !strings.HasSuffix(m[1], "Z") || tm.Location() != time.UTC {
			t.Errorf("time %q is not RFC 3339 in UTC", m[1])
		}
	}
}

// jsonNames lists the JSON field names of t and of the structs it holds.
func jsonNames(t reflect.Type) []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				out = append(out, name)
			}
			walk(f.Type)
		}
	}
	walk(t)
	return out
}

// The documented schema, written out independently of report.go: a field
// added there and not here (nor in README) fails TestJSONSchema.
type documentedStatus struct {
	Schema int    `json:"schema"`
	Time   string `json:"time"`
	OK     bool   `json:"ok"`
	Timer  *struct {
		Unit       string `json:"unit"`
		State      string `json:"state"`
		NextElapse string `json:"next_elapse"`
		Reason     string `json:"reason"`
	} `json:"timer"`
	Lineages []struct {
		Name               string   `json:"name"`
		ChainFile          string   `json:"chain_file"`
		ServedSPKI         string   `json:"served_spki"`
		ServedNotBefore    string   `json:"served_not_before"`
		ServedNotAfter     string   `json:"served_not_after"`
		DaysUntilExpiry    *float64 `json:"days_until_expiry"`
		Protected          bool     `json:"protected"`
		UnprotectedReasons []string `json:"unprotected_reasons"`
		Pending            *struct {
			SPKI             string   `json:"spki"`
			Since            string   `json:"since"`
			Safe             bool     `json:"safe"`
			SafeAt           string   `json:"safe_at"`
			SecondsUntilSafe *int64   `json:"seconds_until_safe"`
			Blocking         []string `json:"blocking"`
		} `json:"pending"`
		ReloadPending bool   `json:"reload_pending"`
		ReloadReason  string `json:"reload_reason"`
		VerifiedAt    string `json:"verified_at"`
		NextKey       *struct {
			SPKI            string `json:"spki"`
			Algorithm       string `json:"algorithm"`
			Staged          string `json:"staged"`
			Committed       string `json:"committed"`
			CommitAllowed   bool   `json:"commit_allowed"`
			CommitAllowedAt string `json:"commit_allowed_at"`
		} `json:"next_key"`
		PresentedReasons []string `json:"presented_reasons"`
		ExpiryError      string   `json:"expiry_error"`
		NotIssued        bool     `json:"not_issued"`
		NotIssuedReason  string   `json:"not_issued_reason"`
		WarningReasons   []string `json:"warning_reasons"`
		Scheduled        *struct {
			Via     string `json:"via"`
			At      string `json:"at"`
			ID      string `json:"id"`
			Command string `json:"command"`
		} `json:"scheduled"`
		ScheduleError  string `json:"schedule_error"`
		TimerCompletes *struct {
			Unit     string `json:"unit"`
			Earliest string `json:"earliest"`
			Latest   string `json:"latest"`
			Source   string `json:"source"`
		} `json:"timer_completes"`
		Error string `json:"error"`
	} `json:"lineages"`
	Owners []struct {
		Owner              string   `json:"owner"`
		Zone               string   `json:"zone"`
		Provider           string   `json:"provider"`
		Lineages           []string `json:"lineages"`
		Aged               bool     `json:"aged"`
		AgedAt             string   `json:"aged_at"`
		SecondsUntilAged   *int64   `json:"seconds_until_aged"`
		Primary            string   `json:"primary"`
		PrimarySerial      uint32   `json:"primary_serial"`
		NegativeTTL        uint32   `json:"negative_ttl"`
		ServersLagging     int      `json:"servers_lagging"`
		ServersUnreachable int      `json:"servers_unreachable"`
		Servers            []struct {
			Name      string   `json:"name"`
			Addr      string   `json:"addr"`
			Reachable bool     `json:"reachable"`
			Serial    uint32   `json:"serial"`
			Lagging   bool     `json:"lagging"`
			TTL       uint32   `json:"ttl"`
			Records   []string `json:"records"`
			Error     string   `json:"error"`
		} `json:"servers"`
		Records []struct {
			Record   string   `json:"record"`
			Owned    bool     `json:"owned"`
			Aged     bool     `json:"aged"`
			AgedAt   string   `json:"aged_at"`
			Blocking []string `json:"blocking"`
		} `json:"records"`
		Unmatched   []string `json:"unmatched"`
		HeldReasons []string `json:"held_reasons"`
		DNSSEC      *struct {
			Signed    bool   `json:"signed"`
			DS        string `json:"ds"`
			Validated string `json:"validated"`
			Reason    string `json:"reason"`
		} `json:"dnssec"`
		Error string `json:"error"`
	} `json:"owners"`
}

type documentedCheck struct {
	Schema int              `json:"schema"`
	Time   string           `json:"time"`
	OK     bool             `json:"ok"`
	Status documentedStatus `json:"status"`
	Live   struct {
		OK      bool     `json:"ok"`
		Reasons []string `json:"reasons"`
		Error   string   `json:"error"`
	} `json:"live"`
}

// TestWriteStatusLifetime: the served leaf's expiry, an unprotected owner,
// an expiry error and the timer warning in the text report.
func TestWriteStatusLifetime(t *testing.T) {
	st := healthy(t)
	pend(st, time.Hour, mNow.Add(10*time.Minute))
	st.Lineages[0].ExpiryErr = "the pending switch becomes safe at X, not before the served certificate expires at Y"
	st.Lineages[0].Unprotected = []string{mOwner + ": the served chain (key 3 1 1 4ab6ed73…) matches no aged record (records none)"}
	var b bytes.Buffer
	writeStatus(&b, st, mNow, &timerReport{Unit: defaultTimerUnit, State: timerDisabled, Reason: "a switch is pending but danehook.timer is not enabled"})
	for _, want := range []string{
		"  expires     2027-01-30T12:00:00Z (in 60.0 days)\n",
		"  UNPROTECTED " + mOwner + ": the served chain",
		"  ERROR the pending switch becomes safe at X, not before",
		"  WARNING: a switch is pending but danehook.timer is not enabled\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	st = healthy(t)
	expires(st, -time.Hour)
	b.Reset()
	writeStatus(&b, st, mNow, nil)
	if !strings.Contains(b.String(), "  EXPIRED     2026-12-01T11:00:00Z\n") || strings.Contains(b.String(), "WARNING") {
		t.Errorf("expired leaf, no timer probe:\n%s", b.String())
	}
}
