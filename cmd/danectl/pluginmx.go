package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/urfave/cli/v2"
)

// `danectl check --plugin DOMAIN...`: the MX view of `status DOMAIN` as a
// monitoring plugin. What pages and what warns follows what a DANE sender
// (RFC 7672) does at each MX host (deploy.MXState):
//
//   - CRITICAL: a host with TLSA records presents a chain (RSA or ECDSA)
//     that matches none of them, or does not offer STARTTLS: DANE senders
//     defer mail to it (RFC 7672 §2.2, §3.1). Not a threshold: one such host
//     is mail that does not arrive.
//   - WARNING: a host that cannot be reached (no address, connection
//     refused) beyond --warning-mx-unreachable; a host without TLSA records
//     beyond --warning-mx-without-tlsa (senders deliver without DANE); a
//     host whose TLSA lookup failed or whose handshake failed after
//     connecting. Senders move to the next MX for these: a warning, unless
//     the operator pages on --critical-mx-unreachable (e.g. 1 of 2 hosts).
//   - UNKNOWN: the MX RRset could not be read.
//
// The lineages here that manage an MX host are evaluated as `check
// --plugin LINEAGE...` is (aged records, lagging servers, pending switches,
// expiry), so a lagging secondary or a stuck switch warns as usual.

// mxPluginFlags are check's flags for the MX view.
var mxPluginFlags = []cli.Flag{
	&cli.IntFlag{Name: "smtp-port", Value: 25, Usage: "with DOMAIN: the TCP `PORT` dialed for STARTTLS at each MX host"},
	&cli.StringFlag{Name: "warning-mx-unreachable", Value: "0", Usage: "plugin mode, DOMAIN: WARNING when more than `N` MX hosts cannot be reached (no address, no connection; \"\" off)"},
	&cli.StringFlag{Name: "critical-mx-unreachable", Usage: "plugin mode, DOMAIN: CRITICAL when more than `N` MX hosts cannot be reached (default off)"},
	&cli.StringFlag{Name: "warning-mx-without-tlsa", Value: "0", Usage: "plugin mode, DOMAIN: WARNING when more than `N` MX hosts have no TLSA records (\"\" off)"},
	&cli.StringFlag{Name: "critical-mx-without-tlsa", Usage: "plugin mode, DOMAIN: CRITICAL when more than `N` MX hosts have no TLSA records (default off)"},
}

// mxCounts are the MX view's figures (the perfdata).
type mxCounts struct {
	Hosts, OK, Failing, Unreachable, WithoutTLSA int
}

// evaluateMX turns MX reports into plugin problems and perfdata; it
// returns the summary for the status line when nothing is wrong.
func evaluateMX(reps []*deploy.MXReport, th thresholds) (problems []pluginProblem, perf []string, summary string) {
	add := func(state int, format string, a ...any) {
		problems = append(problems, pluginProblem{state, fmt.Sprintf(format, a...)})
	}
	var n mxCounts
	var domains []string
	for _, r := range reps {
		domains = append(domains, strings.TrimSuffix(r.Domain, "."))
		if r.Err != "" {
			add(pluginUnknown, "MX of %s: %s", r.Domain, r.Err)
			continue
		}
		for _, h := range r.Hosts {
			n.Hosts++
			managed := "unmanaged"
			if len(h.Lineages) > 0 {
				managed = "lineage " + strings.Join(h.Lineages, ", ")
			}
			switch h.State {
			case deploy.MXOK:
				n.OK++
			case deploy.MXMismatch, deploy.MXNoSTARTTLS:
				n.Failing++
				add(pluginCritical, "MX %s (%s): %s", h.Host, managed, h.Problem)
			case deploy.MXUnreachable:
				n.Unreachable++
			case deploy.MXNoTLSA:
				n.WithoutTLSA++
			default: // tlsa_lookup_failed, handshake_failed, or a state this binary does not know
				add(pluginWarning, "MX %s (%s): %s", h.Host, managed, h.Problem)
			}
		}
	}
	limit := func(count int, warn, crit *int, what string) {
		if count == 0 && warn == nil && crit == nil {
			return
		}
		var hosts []string
		for _, r := range reps {
			for _, h := range r.Hosts {
				if (what == "unreachable" && h.State == deploy.MXUnreachable) || (what == "without TLSA records" && h.State == deploy.MXNoTLSA) {
					hosts = append(hosts, h.Host+": "+h.Problem)
				}
			}
		}
		detail := strings.Join(hosts, "; ")
		switch {
		case crit != nil && count > *crit:
			add(pluginCritical, "%d MX host(s) %s (critical above %d): %s", count, what, *crit, detail)
		case warn != nil && count > *warn:
			add(pluginWarning, "%d MX host(s) %s (warning above %d): %s", count, what, *warn, detail)
		}
	}
	limit(n.Unreachable, th.WarnMXUnreachable, th.CritMXUnreachable, "unreachable")
	limit(n.WithoutTLSA, th.WarnMXNoTLSA, th.CritMXNoTLSA, "without TLSA records")
	summary = fmt.Sprintf("%s: %d MX host(s), %d with every presented chain matching a TLSA record at its owner", strings.Join(domains, ", "), n.Hosts, n.OK)
	perf = []string{
		perfDatum("mx_hosts", float64(n.Hosts), "", "", "", "0"),
		perfDatum("mx_hosts_ok", float64(n.OK), "", "", "", "0"),
		perfDatum("mx_hosts_failing", float64(n.Failing), "", "", "0", "0"),
		perfDatum("mx_hosts_unreachable", float64(n.Unreachable), "", rangeAboveInt(th.WarnMXUnreachable), rangeAboveInt(th.CritMXUnreachable), "0"),
		perfDatum("mx_hosts_without_tlsa", float64(n.WithoutTLSA), "", rangeAboveInt(th.WarnMXNoTLSA), rangeAboveInt(th.CritMXNoTLSA), "0"),
	}
	return problems, perf, summary
}

// splitDomains separates check's arguments into lineages and domains (an
// argument with a dot that is not a lineage, as `status` does); an error
// when both are given.
func splitDomains(e *deploy.Engine, args []string) (domains []string, err error) {
	for _, a := range args {
		if _, ok := e.Config.Lineages[a]; !ok && strings.Contains(a, ".") {
			domains = append(domains, a)
		}
	}
	if len(domains) > 0 && len(domains) != len(args) {
		return nil, errors.New("give lineages or domains, not both")
	}
	return domains, nil
}

// pluginMX is `danectl check --plugin DOMAIN...`: the MX view, then the
// lineages here that manage an MX host, as one plugin result.
func pluginMX(c *cli.Context, e *deploy.Engine, ctx context.Context, timeout time.Duration, th thresholds, domains []string) pluginResult {
	var reps []*deploy.MXReport
	for _, d := range domains {
		rep, err := e.MX(ctx, d, c.Int("smtp-port"))
		if err != nil {
			return pluginResult{State: pluginUnknown, Problems: []pluginProblem{{pluginUnknown, err.Error()}}}
		}
		reps = append(reps, rep)
	}
	if ctx.Err() != nil {
		return pluginResult{State: pluginUnknown, Problems: []pluginProblem{{pluginUnknown, fmt.Sprintf("timed out after %s while asking the MX hosts", timeout)}}}
	}
	problems, perf, summary := evaluateMX(reps, th)
	res := pluginResult{Problems: problems, Summary: summary, Perf: perf}

	var managed []string
	for _, r := range reps {
		for _, h := range r.Hosts {
			for _, l := range h.Lineages {
				if !slices.Contains(managed, l) {
					managed = append(managed, l)
				}
			}
		}
	}
	if len(managed) > 0 {
		st, err := e.Status(ctx, managed...)
		if err != nil {
			what := "observing DNS and Postfix for lineage(s) " + strings.Join(managed, ", ")
			if ctx.Err() != nil {
				res.Problems = append(res.Problems, pluginProblem{pluginUnknown, fmt.Sprintf("timed out after %s while %s", timeout, what)})
			} else {
				res.Problems = append(res.Problems, pluginProblem{pluginUnknown, fmt.Sprintf("%s: %v", what, err)})
			}
		} else {
			now := time.Now()
			rep := newStatusReport(st, now, timerCheck(ctx, c.String("timer-unit"), pendingSwitch(st)))
			checks, verr := e.Verify(ctx, managed...)
			lr := evaluatePlugin(&rep, &liveReport{OK: verr == nil, Reasons: checks}, verr, th, now)
			res.Problems = append(res.Problems, lr.Problems...)
			res.Summary += "; lineage(s) " + strings.Join(managed, ", ") + ": " + lr.Summary
			res.Perf = append(res.Perf, lr.Perf...)
		}
	}
	for _, p := range res.Problems {
		res.State = worse(res.State, p.State)
	}
	sortProblems(res.Problems)
	return res
}

// checkDomains is `danectl check DOMAIN...` without --plugin: the report of
// `status DOMAIN`, with check's exit code 8 when a host's chain does not
// match its TLSA records or it refuses STARTTLS (as for a lineage's live
// chain), 1 for any other finding.
func checkDomains(c *cli.Context, e *deploy.Engine, ctx context.Context, domains []string) error {
	return mxStatus(c, e, ctx, domains, cliapp.ExitPostfix)
}
