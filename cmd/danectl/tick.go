package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/rotate"
	"github.com/urfave/cli/v2"
)

// tickCommand is "danectl tick".
func tickCommand() *cli.Command {
	return &cli.Command{
		Name:  "tick",
		Usage: "the timer's step: complete pending switches that became safe, reload, verify, clean up",
		Description: `tick runs exactly what dane-reload runs; the systemd timer calls it hourly.

Then, when the reload step succeeded, it applies each lineage's rotate_every:
a key older than that is staged, a staged key whose records are aged is
committed (dane-reload never rotates).

When a switch (or, with rotate_every, a rotation commit) becomes safe at a
known time, every run schedules the run that completes it at that time
([schedule] via: a transient systemd timer, an at job, or the timer's next
tick); --not-before is how an at job waits the seconds at(1) does not keep.

--metrics-file PATH (default off) then writes, atomically, the figures of
'danectl status' per lineage and owner in the Prometheus text format for
node_exporter's textfile collector (name it *.prom in the collector's
directory); see README.md "Monitoring".

A lineage configured before its first issuance is reported (one info line)
and skipped; a first chain file installed while Postfix serves no chain is a
warning with the postconf line, not an error. While Postfix reads TLS files
that exist and are not the lineages' chain files (certbot's live/ files, a
snakeoil certificate), tick publishes the records but installs, reloads and
removes nothing, and exits 8 with the postconf line as hint.

Exit codes: as dane-reload: 0 ok (switches may still be pending), 2 bad
input, 3 TSIG/authentication failure, 4 refused, 5 not authoritative,
6 server failure, 8 postfix check/reload failed, the live chain does not
match, or Postfix reads files other than the chain files, 9 locked.`,
		Flags: []cli.Flag{cliapp.ConfigFlag,
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus textfile-collector metrics to `PATH` (e.g. /var/lib/prometheus/node-exporter/danehook.prom)"},
			&cli.StringFlag{
				Name:  "not-before",
				Usage: "wait until `TIME` (RFC 3339, at most 1 hour ahead) before running: at(1) jobs keep whole minutes only",
			},
		},
		Action: func(c *cli.Context) error {
			if v := c.String("not-before"); v != "" {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return fail(exitUsage, fmt.Errorf("danectl tick --not-before %q: want an RFC 3339 time like 2026-12-01T13:20:05Z", v), "")
				}
				if d := time.Until(t); d > time.Hour {
					return fail(exitUsage, fmt.Errorf("danectl tick --not-before %s is %s ahead: at most 1 hour", v, d.Round(time.Second)), "")
				} else if d > 0 {
					select {
					case <-time.After(d):
					case <-c.Context.Done():
						return cliapp.Classify(c.Context.Err())
					}
				}
			}
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			ctx, cancel := cliapp.Context(c, 5*time.Minute)
			defer cancel()
			log := cliapp.Log(c)
			err = tick(ctx, e, log)
			if path := c.String("metrics-file"); path != "" {
				now := time.Now()
				st, serr := e.Status(ctx)
				var rep *statusReport
				if serr == nil {
					r := newStatusReport(st, now, nil)
					rep = &r
				}
				if merr := writeMetricsFile(path, tickMetrics(now, err, rep, serr)); merr != nil && err == nil {
					err = merr
				}
			}
			return cliapp.Classify(err)
		},
	}
}

// tick is the timer's step: the reload step, then (when it succeeded) the
// rotate_every policy.
func tick(ctx context.Context, e *deploy.Engine, log *slog.Logger) error {
	r, err := e.Reload(ctx)
	cliapp.LogReload(log, r)
	if err != nil {
		// No rotation while what is served is not verified.
		return err
	}
	done, err := rotate.Policy(ctx, e)
	for _, a := range done {
		log.Info("rotate_every: " + a)
	}
	return err
}

// checkCommand is "danectl check".
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check DNS at every authoritative server and the live STARTTLS chain, changing nothing",
		ArgsUsage: "[LINEAGE...] | DOMAIN...",
		Description: `check is a local danecheck: 'danectl status' plus a STARTTLS handshake to
every configured endpoint, matched against the records the provider serves.
--json prints the report described in README.md ("JSON output").

--plugin makes it a Nagios/Icinga monitoring plugin (Monitoring Plugins
guidelines): one line "DANEHOOK OK - ... | perfdata" on stdout and exit
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. CRITICAL: a served chain matches no
aged record, the live STARTTLS chain does not match, a pending switch cannot
become safe before the served certificate expires, or a --critical-* limit.
WARNING: a switch pending longer than --warning-pending, the served leaf
expiring within --warning-expiry days, a lagging or silent authoritative
server, a pending switch while the timer is not enabled, an unsigned zone,
2 x x records that do not apply to a host the certificate does not name (RFC
7672 §3.2.3), Postfix reading TLS files other than the chain files.
Perfdata: seconds_until_aged, days_until_expiry (served leaf),
seconds_pending, servers_lagging, servers_unreachable,
records_unowned_unmatched.

With DOMAIN arguments (names that are not lineages) check reports every MX
host of each domain as 'danectl status DOMAIN' does; --plugin then goes
CRITICAL when a host with TLSA records presents a chain that matches none of
them or offers no STARTTLS (DANE senders defer mail to it), WARNING when more
than --warning-mx-unreachable hosts cannot be reached or more than
--warning-mx-without-tlsa hosts have no TLSA records, or a TLSA lookup or
handshake failed; the lineages here that manage an MX host are evaluated as
above. Perfdata: mx_hosts, mx_hosts_ok, mx_hosts_failing,
mx_hosts_unreachable, mx_hosts_without_tlsa (then the lineages' figures).

A lineage configured before its first issuance is reported as not issued
yet and does not change the exit code.

Exit codes: 0 all good; 1 something waits (a pending switch, a record not
aged yet, a reload pending); 8 the live STARTTLS chain does not match an aged
record, an endpoint does not answer, or Postfix reads TLS files that are not
the lineages' chain files (every hook run and tick refuses; the hint is the
postconf line) (with DOMAIN: an MX host presents a
chain that matches none of its TLSA records or offers no STARTTLS; 1 for
other findings); 2 bad input; 3 TSIG/authentication
failure, 4 refused, 5 not authoritative, 6 server failure; 9 another danehook
run holds the lock. With --plugin: 0-3 as above.`,
		Flags: append(append([]cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag, timerFlag}, pluginFlags...), mxPluginFlags...),
		// A monitoring plugin answers a bad option with UNKNOWN (exit 3) and
		// one status line (Monitoring Plugins guidelines, "Plugin Return
		// Codes"), not with urfave's usage error.
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			args, _ := c.App.Metadata["args"].([]string)
			if slices.ContainsFunc(args, func(a string) bool { return a == "--plugin" || a == "-plugin" || strings.HasPrefix(a, "--plugin=") }) {
				fmt.Fprint(c.App.Writer, pluginResult{State: pluginUnknown, Problems: []pluginProblem{{pluginUnknown, "bad option: " + err.Error()}}})
				return cliapp.Silent(pluginUnknown)
			}
			return err
		},
		Action: func(c *cli.Context) error {
			if c.Bool("plugin") {
				return pluginAction(c)
			}
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			ctx, cancel := cliapp.Context(c, 2*time.Minute)
			defer cancel()
			domains, err := splitDomains(e, c.Args().Slice())
			if err != nil {
				return fail(exitUsage, fmt.Errorf("check: %w", err), "run 'danectl check LINEAGE...' and 'danectl check DOMAIN...' separately")
			}
			if len(domains) > 0 {
				return checkDomains(c, e, ctx, domains)
			}
			st, err := e.Status(ctx, c.Args().Slice()...)
			if err != nil {
				return cliapp.Classify(err)
			}
			now := time.Now()
			tr := timerCheck(ctx, c.String("timer-unit"), needsTimer(st))
			checks, verr := e.Verify(ctx, c.Args().Slice()...)
			w := c.App.Writer
			if c.Bool("json") {
				rep := checkReport{Schema: jsonSchema, Time: rfc3339(now), OK: verr == nil && st.OK(),
					Status: newStatusReport(st, now, tr), Live: liveReport{OK: verr == nil, Reasons: checks}}
				if rep.Live.Reasons == nil {
					rep.Live.Reasons = []string{}
				}
				if verr != nil {
					rep.Live.Error = verr.Error()
				}
				if err := writeJSON(w, rep); err != nil {
					return err
				}
			} else {
				writeStatus(w, st, now, tr)
				fmt.Fprintln(w)
				fmt.Fprintln(w, "live STARTTLS checks:")
				for _, v := range checks {
					fmt.Fprintf(w, "  ok %s\n", v)
				}
				if verr != nil {
					fmt.Fprintf(w, "  FAILED %v\n", verr)
				}
			}
			if st.Refusal != nil {
				// Postfix reads files danehook does not protect (exit 8,
				// the postconf line as hint), as the hooks and tick refuse.
				return cliapp.Classify(st.Refusal)
			}
			if verr != nil {
				return cliapp.Classify(verr)
			}
			if !st.OK() {
				return fail(exitMismatch, fmt.Errorf("danectl: waiting: %s", st.Waiting()), "")
			}
			return nil
		},
	}
}
