package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/config"
	"github.com/urfave/cli/v2"
)

// `danectl check --plugin` follows the Monitoring Plugins guidelines
// (https://www.monitoring-plugins.org/doc/guidelines.html, and their
// successor github.com/monitoring-plugins/monitoring-plugin-guidelines,
// monitoring_plugins_interface/03.Output.md):
//
//   - exit code 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN ("Plugin Return
//     Codes"); UNKNOWN only when the plugin could not determine the state
//     (configuration, state or lock unreadable, its own timeout);
//   - one status line on stdout, "DANEHOOK <STATE> - <text> | <perfdata>",
//     then one line per further problem ("partial results" get their own
//     line);
//   - perfdata "'label'=value[UOM];[warn];[crit];[min];[max]", values in the
//     C locale without exponent, "U" when a value cannot be determined
//     ("Performance data");
//   - warn and crit as range expressions "[@][start:][end]" (alert outside
//     start..end; definitions/01.range_expressions.md);
//   - --timeout (-t) in seconds, default 30, ending in UNKNOWN with the stage
//     it stopped in (02.Input.md).

// Plugin states (Monitoring Plugins "Plugin Return Codes").
const (
	pluginOK       = 0
	pluginWarning  = 1
	pluginCritical = 2
	pluginUnknown  = 3
)

var pluginStateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// severity orders states for "the worst one wins": a CRITICAL finding is
// not hidden by an UNKNOWN one (OK < WARNING < UNKNOWN < CRITICAL, the
// order Icinga sorts service problems in).
var severity = [...]int{pluginOK: 0, pluginWarning: 1, pluginUnknown: 2, pluginCritical: 3}

// worse returns the worse of two states.
func worse(a, b int) int {
	if severity[b] > severity[a] {
		return b
	}
	return a
}

// pluginFlags are check's flags for --plugin mode.
var pluginFlags = []cli.Flag{
	&cli.BoolFlag{Name: "plugin", Usage: "act as a Nagios/Icinga monitoring plugin: one status line with perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"},
	&cli.IntFlag{Name: "timeout", Aliases: []string{"t"}, Value: 30, Usage: "plugin mode: give up after `SECONDS` (UNKNOWN)"},
	&cli.StringFlag{Name: "warning-pending", Value: "12h", Usage: "plugin mode: WARNING when a switch has been pending longer than `DURATION` (\"90m\", \"2d\"; \"\" off)"},
	&cli.StringFlag{Name: "critical-pending", Usage: "plugin mode: CRITICAL when a switch has been pending longer than `DURATION` (default off)"},
	&cli.StringFlag{Name: "warning-expiry", Usage: "plugin mode: WARNING when the served leaf expires in fewer than `DAYS` (default: 20% of its lifetime)"},
	&cli.StringFlag{Name: "critical-expiry", Usage: "plugin mode: CRITICAL when the served leaf expires in fewer than `DAYS` (default: 10% of its lifetime)"},
	&cli.StringFlag{Name: "warning-lagging", Value: "0", Usage: "plugin mode: WARNING when more than `N` servers lag behind the primary or do not answer (\"\" off)"},
	&cli.StringFlag{Name: "critical-lagging", Usage: "plugin mode: CRITICAL when more than `N` servers lag or do not answer (default off)"},
	&cli.StringFlag{Name: "warning-unmatched", Usage: "plugin mode: WARNING when more than `N` records danehook does not own match no chain (default off)"},
	&cli.StringFlag{Name: "critical-unmatched", Usage: "plugin mode: CRITICAL when more than `N` such records (default off)"},
}

// thresholds are the plugin's limits; a nil pointer is "off" (for expiry:
// relative to the served leaf's lifetime).
type thresholds struct {
	WarnPending, CritPending     *time.Duration
	WarnExpiry, CritExpiry       *float64 // days
	WarnLagging, CritLagging     *int
	WarnUnmatched, CritUnmatched *int
	// The MX view (check --plugin DOMAIN).
	WarnMXUnreachable, CritMXUnreachable *int
	WarnMXNoTLSA, CritMXNoTLSA           *int
}

// parseThresholds reads the threshold flags; an error names the flag.
func parseThresholds(c *cli.Context) (thresholds, error) {
	var th thresholds
	dur := func(name string, dst **time.Duration) error {
		v := strings.TrimSpace(c.String(name))
		if v == "" {
			return nil
		}
		var d config.Duration
		if err := d.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		*dst = new(time.Duration(d))
		return nil
	}
	days := func(name string, dst **float64) error {
		v := strings.TrimSpace(c.String(name))
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("--%s %q: want a number of days, e.g. 14 or 1.5", name, v)
		}
		*dst = &f
		return nil
	}
	count := func(name string, dst **int) error {
		v := strings.TrimSpace(c.String(name))
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("--%s %q: want a count, e.g. 0", name, v)
		}
		*dst = &n
		return nil
	}
	return th, errors.Join(
		dur("warning-pending", &th.WarnPending), dur("critical-pending", &th.CritPending),
		days("warning-expiry", &th.WarnExpiry), days("critical-expiry", &th.CritExpiry),
		count("warning-lagging", &th.WarnLagging), count("critical-lagging", &th.CritLagging),
		count("warning-unmatched", &th.WarnUnmatched), count("critical-unmatched", &th.CritUnmatched),
		count("warning-mx-unreachable", &th.WarnMXUnreachable), count("critical-mx-unreachable", &th.CritMXUnreachable),
		count("warning-mx-without-tlsa", &th.WarnMXNoTLSA), count("critical-mx-without-tlsa", &th.CritMXNoTLSA))
}

// pluginProblem is one finding and the state it raises.
type pluginProblem struct {
	State int
	Text  string
}

// pluginResult is what the plugin prints and exits with.
type pluginResult struct {
	State    int
	Problems []pluginProblem
	Summary  string // the status line's text when there is no problem
	Perf     []string
}

// Line returns the plugin's output: the status line with perfdata, then
// one line per problem after the first.
func (r pluginResult) String() string {
	text := r.Summary
	if len(r.Problems) > 0 {
		text = r.Problems[0].Text
		if n := len(r.Problems) - 1; n > 0 {
			text += fmt.Sprintf(" (and %d more)", n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "DANEHOOK %s - %s", pluginStateNames[r.State], oneLine(text))
	if len(r.Perf) > 0 {
		b.WriteString(" | " + strings.Join(r.Perf, " "))
	}
	b.WriteString("\n")
	for i, p := range r.Problems {
		if i > 0 {
			fmt.Fprintf(&b, "%s: %s\n", pluginStateNames[p.State], oneLine(p.Text))
		}
	}
	return b.String()
}

// oneLine keeps text on one line and out of the perfdata ("|" starts it).
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "|", "/").Replace(s)
}

// perfFloat formats v for perfdata: the C locale, no exponent, "U" for NaN.
func perfFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "U"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// perfDatum formats "'label'=value[uom];warn;crit;min;max", dropping
// trailing empty fields.
func perfDatum(label string, value float64, uom string, fields ...string) string {
	s := "'" + label + "'=" + perfFloat(value)
	if !math.IsNaN(value) {
		s += uom
	}
	parts := append([]string{s}, fields...)
	for len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, ";")
}

// evaluatePlugin turns a status report (made at now), the live
// verification's result and the thresholds into the plugin's result.
// statusErr is an error of the status step (UNKNOWN); verr one of the
// live STARTTLS verification (CRITICAL when the live chain does not match
// or cannot be fetched, UNKNOWN for a lock or configuration problem).
func evaluatePlugin(r *statusReport, live *liveReport, verr error, th thresholds, now time.Time) pluginResult {
	res := pluginResult{}
	add := func(state int, format string, a ...any) {
		res.Problems = append(res.Problems, pluginProblem{state, fmt.Sprintf(format, a...)})
		res.State = worse(res.State, state)
	}
	untilAged := 0.0 // the largest wait among the owners; NaN when unknown
	minDays := math.NaN()
	lagging, unmatched, unreachable := 0, 0, 0
	oldestPending := time.Duration(0)
	timerOff := r.Timer != nil && r.Timer.State == timerDisabled
	for _, l := range r.Lineages {
		for _, u := range l.UnprotectedReasons {
			add(pluginCritical, "lineage %s: %s", l.Name, u)
		}
		if l.ExpiryError != "" {
			add(pluginCritical, "lineage %s: %s", l.Name, l.ExpiryError)
		}
		if l.Error != "" {
			add(pluginWarning, "lineage %s: %s", l.Name, l.Error)
		}
		// A stale issuer set: the next switch (onto an issuer outside the
		// set) will wait for DNS, or the set no longer covers the CA.
		for _, wr := range l.WarningReasons {
			add(pluginWarning, "lineage %s: %s", l.Name, wr)
		}
		if l.DaysUntilExpiry != nil {
			d := *l.DaysUntilExpiry
			if math.IsNaN(minDays) || d < minDays {
				minDays = d
			}
			warn, crit := expiryLimits(th, l)
			switch {
			case crit != nil && d < *crit:
				add(pluginCritical, "lineage %s: the served certificate expires in %.1f days (at %s; critical below %s)", l.Name, d, l.ServedNotAfter, perfFloat(*crit))
			case warn != nil && d < *warn:
				add(pluginWarning, "lineage %s: the served certificate expires in %.1f days (at %s; warning below %s)", l.Name, d, l.ServedNotAfter, perfFloat(*warn))
			}
		}
		if p := l.Pending; p != nil && !p.Safe {
			age := time.Duration(0)
			if since, err := time.Parse(time.RFC3339, p.Since); err == nil {
				age = now.Sub(since)
			}
			oldestPending = max(oldestPending, age)
			switch {
			case th.CritPending != nil && age > *th.CritPending:
				add(pluginCritical, "lineage %s: switch to key 3 1 1 %s pending for %s (critical above %s)", l.Name, short(p.SPKI), age.Round(time.Second), *th.CritPending)
			case th.WarnPending != nil && age > *th.WarnPending:
				add(pluginWarning, "lineage %s: switch to key 3 1 1 %s pending for %s (warning above %s)", l.Name, short(p.SPKI), age.Round(time.Second), *th.WarnPending)
			}
			if timerOff {
				add(pluginWarning, "lineage %s: %s", l.Name, r.Timer.Reason)
				timerOff = false // once
			}
		}
	}
	for _, o := range r.Owners {
		if o.Error != "" {
			add(pluginWarning, "%s: %s", o.Owner, o.Error)
		}
		switch {
		case o.SecondsUntilAged == nil && len(o.Records) > 0:
			untilAged = math.NaN()
		case o.SecondsUntilAged != nil && !math.IsNaN(untilAged):
			untilAged = max(untilAged, float64(*o.SecondsUntilAged))
		}
		lagging += o.ServersLagging
		unreachable += o.ServersUnreachable
		unmatched += len(o.Unmatched)
		if o.DNSSEC != nil && !o.DNSSEC.Signed {
			add(pluginWarning, "%s: zone %s is not DNSSEC-signed: senders ignore its TLSA records (RFC 7672 §2.2)", o.Owner, o.Zone)
		}
	}
	if verr != nil {
		code := pluginCritical
		var ee *cliapp.Error
		if errors.As(cliapp.Classify(verr), &ee) && (ee.Code == cliapp.ExitLocked || ee.Code == cliapp.ExitUsage || ee.Code == cliapp.ExitSystem) {
			code = pluginUnknown
		}
		add(code, "live STARTTLS check: %v", verr)
	}
	if n := lagging + unreachable; n > 0 || th.WarnLagging != nil || th.CritLagging != nil {
		switch {
		case th.CritLagging != nil && n > *th.CritLagging:
			add(pluginCritical, "%d server(s) lag behind the primary or do not answer (critical above %d)", n, *th.CritLagging)
		case th.WarnLagging != nil && n > *th.WarnLagging:
			add(pluginWarning, "%d server(s) lag behind the primary or do not answer (warning above %d)", n, *th.WarnLagging)
		}
	}
	switch {
	case th.CritUnmatched != nil && unmatched > *th.CritUnmatched:
		add(pluginCritical, "%d record(s) danehook does not own match no chain Postfix may serve (critical above %d; 'danectl prune')", unmatched, *th.CritUnmatched)
	case th.WarnUnmatched != nil && unmatched > *th.WarnUnmatched:
		add(pluginWarning, "%d record(s) danehook does not own match no chain Postfix may serve (warning above %d; 'danectl prune')", unmatched, *th.WarnUnmatched)
	}
	// Worst first: the status line names the gravest problem.
	sortProblems(res.Problems)
	checks := 0
	if live != nil {
		checks = len(live.Reasons)
	}
	res.Summary = fmt.Sprintf("%d lineage(s), %d owner(s): every served chain matches an aged record; %d live STARTTLS check(s) matched", len(r.Lineages), len(r.Owners), checks)
	if oldestPending > 0 {
		res.Summary += fmt.Sprintf("; a switch is pending for %s", oldestPending.Round(time.Second))
	}

	var expWarn, expCrit string
	for _, l := range r.Lineages {
		if l.DaysUntilExpiry != nil && *l.DaysUntilExpiry == minDays {
			w, c := expiryLimits(th, l)
			expWarn, expCrit = rangeBelow(w), rangeBelow(c)
			break
		}
	}
	res.Perf = []string{
		perfDatum("seconds_until_aged", untilAged, "s", "", "", "0"),
		perfDatum("days_until_expiry", minDays, "", expWarn, expCrit),
		perfDatum("seconds_pending", math.Round(oldestPending.Seconds()), "s", rangeAbove(secondsOf(th.WarnPending)), rangeAbove(secondsOf(th.CritPending)), "0"),
		perfDatum("servers_lagging", float64(lagging), "", rangeAboveInt(th.WarnLagging), rangeAboveInt(th.CritLagging), "0"),
		perfDatum("servers_unreachable", float64(unreachable), "", rangeAboveInt(th.WarnLagging), rangeAboveInt(th.CritLagging), "0"),
		perfDatum("records_unowned_unmatched", float64(unmatched), "", rangeAboveInt(th.WarnUnmatched), rangeAboveInt(th.CritUnmatched), "0"),
	}
	return res
}

// expiryLimits returns the warning and critical limits in days for l: the
// flags, or 20% and 10% of the served leaf's lifetime when it is known
// (18 and 9 days of a 90-day certificate, 1.2 and 0.6 of a 6-day one).
func expiryLimits(th thresholds, l lineageReport) (warn, crit *float64) {
	warn, crit = th.WarnExpiry, th.CritExpiry
	nb, err1 := time.Parse(time.RFC3339, l.ServedNotBefore)
	na, err2 := time.Parse(time.RFC3339, l.ServedNotAfter)
	if life := na.Sub(nb).Hours() / 24; err1 == nil && err2 == nil && life > 0 {
		if warn == nil {
			warn = new(math.Round(life*0.2*100) / 100)
		}
		if crit == nil {
			crit = new(math.Round(life*0.1*100) / 100)
		}
	}
	return warn, crit
}

// rangeBelow is the range expression that alerts below v ("v:"), "" for nil.
func rangeBelow(v *float64) string {
	if v == nil {
		return ""
	}
	return perfFloat(*v) + ":"
}

// rangeAbove is the range expression that alerts above v ("v", i.e. 0..v), "" for nil.
func rangeAbove(v *float64) string {
	if v == nil {
		return ""
	}
	return perfFloat(*v)
}

func rangeAboveInt(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

func secondsOf(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	return new(d.Seconds())
}

// sortProblems orders problems by state, gravest first, keeping the order
// within a state.
func sortProblems(ps []pluginProblem) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && severity[ps[j].State] > severity[ps[j-1].State]; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// short abbreviates a hex digest to 8 digits.
func short(hex string) string {
	if len(hex) > 8 {
		return hex[:8] + "…"
	}
	return hex
}

// pluginAction is `danectl check --plugin`.
func pluginAction(c *cli.Context) error {
	w := c.App.Writer
	unknown := func(format string, a ...any) error {
		fmt.Fprint(w, pluginResult{State: pluginUnknown, Problems: []pluginProblem{{pluginUnknown, fmt.Sprintf(format, a...)}}})
		return cliapp.Silent(pluginUnknown)
	}
	th, err := parseThresholds(c)
	if err != nil {
		return unknown("%v", err)
	}
	timeout := time.Duration(c.Int("timeout")) * time.Second
	if timeout <= 0 {
		return unknown("--timeout %d: want a positive number of seconds", c.Int("timeout"))
	}
	e, err := cliapp.Engine(c)
	if err != nil {
		return unknown("%v", err)
	}
	// A tick holding the lock must not make the plugin outlive its timeout.
	e.LockWait = timeout / 3
	ctx, cancel := cliapp.Context(c, timeout)
	defer cancel()
	stage := func(what string, err error) error {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return unknown("timed out after %s while %s", timeout, what)
		}
		return unknown("%s: %v", what, err)
	}
	domains, err := splitDomains(e, c.Args().Slice())
	if err != nil {
		return unknown("%v", err)
	}
	if len(domains) > 0 {
		res := pluginMX(c, e, ctx, timeout, th, domains)
		fmt.Fprint(w, res)
		if res.State == pluginOK {
			return nil
		}
		return cliapp.Silent(res.State)
	}
	st, err := e.Status(ctx, c.Args().Slice()...)
	if err != nil {
		return stage("observing DNS and Postfix", err)
	}
	now := time.Now()
	rep := newStatusReport(st, now, timerCheck(ctx, c.String("timer-unit"), pendingSwitch(st)))
	checks, verr := e.Verify(ctx, c.Args().Slice()...)
	if verr != nil && ctx.Err() != nil {
		return stage("verifying the live STARTTLS chains", verr)
	}
	live := &liveReport{OK: verr == nil, Reasons: checks}
	res := evaluatePlugin(&rep, live, verr, th, now)
	fmt.Fprint(w, res)
	if res.State == pluginOK {
		return nil
	}
	return cliapp.Silent(res.State)
}
