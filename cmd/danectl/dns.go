package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/schedule"
	"github.com/urfave/cli/v2"
)

// planCommand is "danectl plan".
func planCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "show the TLSA changes 'publish' would make, changing nothing",
		ArgsUsage: "[LINEAGE...]",
		Description: `For every TLSA owner of the lineages (all when none is named), plan reads
the records the provider serves and prints the difference from the desired
RRset: "+" a record to add, "-" an owned record no chain needs any more, "="
a record that stays (including records danehook does not own), then per zone
how many RFC 2136 UPDATE messages the changes take ("N UPDATE messages for
zone Z": more than one when they do not fit in one DNS message; additions are
sent first).

Exit codes: 0 nothing to change, 1 changes pending, 2 bad input,
3 TSIG/authentication failure, 4 refused, 5 not authoritative, 6 server failure,
9 another danehook run holds the lock.`,
		Flags:  []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag},
		Action: planAction(false),
	}
}

// publishCommand is "danectl publish".
func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "add the TLSA records every chain Postfix may serve needs (never removes one)",
		ArgsUsage: "[LINEAGE...]",
		Description: `publish sends the additions of the plan (see 'danectl plan'): one RFC 2136
UPDATE per zone (as few as hold them when they do not fit in one DNS message;
the output says how many), or the provider API's calls. It is idempotent: a
second run sends nothing. It never removes a record: 'danectl tick' removes owned records
no chain needs, once it has seen what Postfix presents.

Exit codes: 0 ok, 2 bad input, 3 TSIG/authentication failure, 4 refused,
5 not authoritative, 6 server failure.`,
		Flags:  []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag},
		Action: planAction(true),
	}
}

// pruneCommand is "danectl prune".
func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "remove records danehook does not own that match no chain Postfix may serve",
		ArgsUsage: "[LINEAGE...]",
		Description: `prune removes, at the owners of the lineages, the TLSA records danehook did
not publish and that no chain Postfix may serve relies on: a control panel's
3 0 1, a stale key's 3 1 1, a retired CA's 2 1 1 ('danectl status' lists them
as "matches no chain"). It removes them only after it has seen, in the same
run, every lineage at the owner present its installed chain and that chain
match an aged record; otherwise it keeps them and says why.

Exit codes: 0 ok (also when something was kept), 2 bad input, 3-6 DNS failures,
9 locked.`,
		Flags: []cli.Flag{cliapp.ConfigFlag},
		Action: func(c *cli.Context) error {
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			ctx, cancel := cliapp.Context(c, 2*time.Minute)
			defer cancel()
			r, err := e.Prune(ctx, c.Args().Slice()...)
			if r != nil {
				for _, rm := range r.Removed {
					fmt.Fprintf(c.App.Writer, "- %s (matched no chain)\n", rm)
				}
				for _, k := range r.Kept {
					fmt.Fprintf(c.App.Writer, "  kept %s\n", k)
				}
				if len(r.Removed) == 0 && len(r.Kept) == 0 {
					fmt.Fprintln(c.App.Writer, "nothing to prune: every record matches a chain Postfix may serve, or danehook owns it")
				}
			}
			return cliapp.Classify(err)
		},
	}
}

// statusCommand is "danectl status".
func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show, per owner and authoritative server, what is served and whether it is aged",
		ArgsUsage: "[LINEAGE...] | DOMAIN...",
		Description: `status asks every authoritative server of each owner (the NS RRset plus
hidden secondaries) for its SOA serial and TLSA records, records when each
server was first seen serving each record, and tells whether the desired
records are aged (served everywhere for 2 x TTL) or when they will be. It also
shows pending switches and whether the zone is DNSSEC-signed. For a pending
switch (or a rotate_every commit) the "completes" line names the run that
completes it and when: the systemd timer or at job scheduled for its safe
time, else the first run of --timer-unit after it (systemd's next elapse of
the unit, else the packaged schedule: hourly, up to 16 minutes into the
hour). For a staged key, ROTATION says when 'danectl rotate commit' becomes
allowed.

A lineage configured before its first issuance is shown as NOT ISSUED YET
and does not change the exit code.

With DOMAIN arguments (names that are not lineages), status reads each
domain's MX RRset from the configured DNS servers (each provider's resolver,
else its query_server; never /etc/resolv.conf) and reports every MX host:
the lineages that manage it here, or "unmanaged"; its TLSA records as a
sender finds them (CNAMEs followed); and, for each of RSA and ECDSA, whether
the chain one STARTTLS handshake to the host presents matches them.

Exit codes: 0 everything aged and nothing pending (with DOMAIN: every MX
host matches), 1 something waits or an owner or lineage could not be
observed (shown as ERROR), 2 bad input, 8 Postfix reads TLS files that are
not the lineages' chain files (certbot's live/ files, a snakeoil
certificate: every hook run and tick refuses; the hint is the postconf line),
9 another danehook run holds the lock.`,
		Flags: []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag, timerFlag,
			&cli.IntFlag{Name: "smtp-port", Value: 25, Usage: "with DOMAIN: the TCP `PORT` dialed for STARTTLS at each MX host"}},
		Action: statusAction,
	}
}

// planJSON is the --json form of one owner's plan.
type planJSON struct {
	Owner    string       `json:"owner"`
	Zone     string       `json:"zone"`
	Provider string       `json:"provider"`
	TTL      uint32       `json:"ttl"`
	Lineages []string     `json:"lineages"`
	Desired  []string     `json:"desired"`
	Changes  []changeJSON `json:"changes"`
	Held     []string     `json:"held,omitempty"`
	// HeldAdditions: an owner's first records, not published while what
	// Postfix serves would not match them (deploy.OwnerPlan.HeldAdditions).
	HeldAdditions       []string `json:"held_additions,omitempty"`
	HeldAdditionsReason string   `json:"held_additions_reason,omitempty"`
	// ZoneMessages: UPDATE messages the zone's changes take (deploy.OwnerPlan.ZoneMessages).
	ZoneMessages int `json:"zone_update_messages,omitempty"`
}

type changeJSON struct {
	Op     string `json:"op"` // "add", "remove", "keep"
	Record string `json:"record"`
	TTL    uint32 `json:"ttl"`
}

func planAction(apply bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		e, err := cliapp.Engine(c)
		if err != nil {
			return err
		}
		ctx, cancel := cliapp.Context(c, 2*time.Minute)
		defer cancel()
		var plans []*deploy.OwnerPlan
		if apply {
			plans, err = e.Publish(ctx, c.Args().Slice()...)
		} else {
			plans, err = e.Plan(ctx, c.Args().Slice()...)
		}
		// Print what was planned (or sent) even when applying failed.
		if plans != nil {
			if perr := printPlans(c.App.Writer, plans, c.Bool("json"), apply && err == nil); perr != nil {
				return perr
			}
		}
		if err != nil {
			return cliapp.Classify(err)
		}
		if !apply {
			for _, p := range plans {
				if !p.Changes.Empty() {
					return fail(exitMismatch, fmt.Errorf("changes pending"), "run 'danectl publish' to apply them")
				}
			}
		}
		return nil
	}
}

// printPlans writes plans to dst as `danectl plan` and `publish` print them
// (--json: the planJSON array), buffered: a publish of 5,000 owners prints
// 10,001 lines, one write(2) each when unbuffered. It returns the first
// error writing to dst.
func printPlans(dst io.Writer, plans []*deploy.OwnerPlan, asJSON, applied bool) error {
	bw := bufio.NewWriterSize(dst, 64<<10)
	w := io.Writer(bw)
	if asJSON {
		out := []planJSON{}
		for _, p := range plans {
			j := planJSON{Owner: p.Owner, Zone: p.Zone, Provider: p.Provider, TTL: p.TTL, Lineages: p.Lineages, Desired: []string{}, Changes: []changeJSON{}, ZoneMessages: p.ZoneMessages}
			for _, r := range p.Desired {
				j.Desired = append(j.Desired, r.String())
			}
			for _, ch := range p.Changes {
				op := map[dnsupdate.Op]string{dnsupdate.Add: "add", dnsupdate.Remove: "remove", dnsupdate.Keep: "keep"}[ch.Op]
				j.Changes = append(j.Changes, changeJSON{Op: op, Record: ch.Record.String(), TTL: ch.TTL})
			}
			for _, h := range p.Held {
				j.Held = append(j.Held, h.Record.String())
			}
			for _, h := range p.HeldAdditions {
				j.HeldAdditions = append(j.HeldAdditions, h.Record.String())
			}
			j.HeldAdditionsReason = p.HeldAdditionsReason
			out = append(out, j)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return bw.Flush()
	}
	var zones []string
	var line []byte
	zoneMessages := map[string]int{}
	for _, p := range plans {
		if _, ok := zoneMessages[p.Zone]; !ok && p.ZoneMessages > 0 {
			zones = append(zones, p.Zone)
			zoneMessages[p.Zone] = p.ZoneMessages
		}
		adds, removes := 0, 0
		for _, ch := range p.Changes {
			switch ch.Op {
			case dnsupdate.Add:
				adds++
			case dnsupdate.Remove:
				removes++
			}
		}
		// "<owner> (zone <zone>, provider <name>, lineages <a, b>): <verb>",
		// appended to one buffer (7 allocations an owner through Fprintf).
		line = append(append(line[:0], p.Owner...), " (zone "...)
		line = append(append(line, p.Zone...), ", provider "...)
		line = append(append(line, p.Provider...), ", lineages "...)
		for i, l := range p.Lineages {
			if i > 0 {
				line = append(line, ", "...)
			}
			line = append(line, l...)
		}
		line = append(line, "): "...)
		switch {
		case adds+removes == 0:
			line = append(line, "no change"...)
		case applied:
			line = strconv.AppendInt(line, int64(adds), 10)
			line = append(line, " added, "...)
			line = strconv.AppendInt(line, int64(removes), 10)
			line = append(line, " removed"...)
		default:
			line = strconv.AppendInt(line, int64(adds), 10)
			line = append(line, " to add, "...)
			line = strconv.AppendInt(line, int64(removes), 10)
			line = append(line, " to remove (not applied)"...)
		}
		bw.Write(append(line, '\n'))
		for _, ch := range p.Changes {
			line = append(ch.AppendTo(append(line[:0], "  "...)), '\n')
			bw.Write(line)
		}
		for _, h := range p.Held {
			fmt.Fprintf(w, "  held: %s (waiting for 'dane-reload' to verify the new chain)\n", h)
		}
		for _, h := range p.HeldAdditions {
			fmt.Fprintf(w, "  not published: %s (%s)\n", h, p.HeldAdditionsReason)
		}
	}
	sort.Strings(zones)
	for _, z := range zones {
		n := zoneMessages[z]
		sent := "to send"
		if applied {
			sent = "sent"
		}
		switch {
		case n == 1:
			fmt.Fprintf(w, "1 UPDATE message for zone %s (%s)\n", z, sent)
		default:
			fmt.Fprintf(w, "%d UPDATE messages for zone %s (%s; the changes do not fit in one DNS message: additions first, then removals)\n", n, z, sent)
		}
	}
	return bw.Flush()
}

func statusAction(c *cli.Context) error {
	e, err := cliapp.Engine(c)
	if err != nil {
		return err
	}
	ctx, cancel := cliapp.Context(c, 2*time.Minute)
	defer cancel()
	var domains []string
	for _, a := range c.Args().Slice() {
		if _, ok := e.Config.Lineages[a]; !ok && strings.Contains(a, ".") {
			domains = append(domains, a)
		}
	}
	if len(domains) > 0 {
		if len(domains) != c.Args().Len() {
			return fail(exitUsage, fmt.Errorf("status: give lineages or domains, not both"), "run 'danectl status LINEAGE...' and 'danectl status DOMAIN...' separately")
		}
		return mxStatus(c, e, ctx, domains, exitMismatch)
	}
	st, err := e.Status(ctx, c.Args().Slice()...)
	if err != nil {
		return cliapp.Classify(err)
	}
	w := c.App.Writer
	now := time.Now()
	tr := timerCheck(ctx, c.String("timer-unit"), needsTimer(st))
	if c.Bool("json") {
		if err := writeJSON(w, newStatusReport(st, now, tr)); err != nil {
			return err
		}
	} else {
		writeStatus(w, st, now, tr)
	}
	if st.Refusal != nil {
		// Postfix reads files danehook does not protect: every hook run
		// and tick refuses (exit 8), and so does status.
		return cliapp.Classify(st.Refusal)
	}
	if !st.OK() {
		return fail(exitMismatch, fmt.Errorf("danectl: waiting: %s", st.Waiting()), "")
	}
	return nil
}

// mxStatus is "danectl status DOMAIN...": every MX host of each domain.
// It exits failing when a host's chain matches none of its TLSA records or
// it refuses STARTTLS (what DANE senders defer on), exitMismatch for any
// other host that is not OK.
func mxStatus(c *cli.Context, e *deploy.Engine, ctx context.Context, domains []string, failing int) error {
	var reps []*deploy.MXReport
	for _, d := range domains {
		rep, err := e.MX(ctx, d, c.Int("smtp-port"))
		if err != nil {
			return fail(exitUsage, err, "")
		}
		reps = append(reps, rep)
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reps); err != nil {
			return err
		}
	} else {
		writeMX(w, reps)
	}
	var bad, failed []string
	for _, r := range reps {
		if !r.OK() {
			bad = append(bad, r.Domain)
		}
		for _, h := range r.Hosts {
			if h.State == deploy.MXMismatch || h.State == deploy.MXNoSTARTTLS {
				failed = append(failed, h.Host)
			}
		}
	}
	if len(failed) > 0 {
		return fail(failing, fmt.Errorf("danectl: DANE senders defer mail to %s: a presented chain matches none of the TLSA records, or STARTTLS is missing", strings.Join(failed, ", ")), "")
	}
	if len(bad) > 0 {
		return fail(exitMismatch, fmt.Errorf("danectl: MX hosts of %s do not all match their TLSA records", strings.Join(bad, ", ")), "")
	}
	return nil
}

// writeMX prints MX reports for people.
func writeMX(w io.Writer, reps []*deploy.MXReport) {
	for _, r := range reps {
		fmt.Fprintf(w, "domain %s (MX read from %s)\n", r.Domain, r.Server)
		if r.Err != "" {
			fmt.Fprintf(w, "  ERROR %s\n", r.Err)
			continue
		}
		for _, h := range r.Hosts {
			managed := "unmanaged"
			if len(h.Lineages) > 0 {
				managed = "managed by lineage " + strings.Join(h.Lineages, ", ")
			}
			state := "ok"
			if !h.OK {
				state = "PROBLEM: " + h.Problem
			}
			fmt.Fprintf(w, "  MX %d %s: %s: %s\n", h.Preference, h.Host, managed, state)
			owner := h.Owner
			if len(h.CNAMEs) > 0 {
				owner = strings.Join(append(append([]string(nil), h.CNAMEs...), h.RecordsAt), " -> ") + " (CNAME)"
			}
			fmt.Fprintf(w, "    TLSA at %s: %d record(s)\n", owner, len(h.TLSA))
			for _, t := range h.TLSA {
				fmt.Fprintf(w, "      %s\n", t)
			}
			for _, ch := range h.Chains {
				switch {
				case !ch.Served:
					fmt.Fprintf(w, "    %s at %s: no certificate of this algorithm\n", ch.Algorithm, ch.Addr)
				case ch.Err != "":
					fmt.Fprintf(w, "    %s at %s: %s\n", ch.Algorithm, ch.Addr, ch.Err)
				default:
					m := "matches"
					if !ch.Matches {
						m = "MATCHES NO RECORD"
					}
					fmt.Fprintf(w, "    %s at %s: %s: %s\n", ch.Algorithm, ch.Addr, ch.Leaf, m)
				}
			}
		}
	}
}

// writeStatus prints the status report for people; tr is the timer's
// state (nil when not probed).
func writeStatus(w io.Writer, st *deploy.Status, now time.Time, tr *timerReport) {
	for _, l := range st.Lineages {
		fmt.Fprintf(w, "lineage %s\n", l.Name)
		if l.NotIssued {
			fmt.Fprintf(w, "  NOT ISSUED YET: %s\n", strings.TrimPrefix(l.NotIssuedReason, "not issued yet: "))
			continue
		}
		served := "none yet"
		if l.Served != "" {
			served = "3 1 1 " + l.Served
		}
		fmt.Fprintf(w, "  chain file  %s (key %s)\n", l.ChainFile, served)
		if !l.ServedNotAfter.IsZero() {
			left := l.ServedNotAfter.Sub(now)
			if left > 0 {
				fmt.Fprintf(w, "  expires     %s (in %.1f days)\n", rfc3339(l.ServedNotAfter), left.Hours()/24)
			} else {
				fmt.Fprintf(w, "  EXPIRED     %s\n", rfc3339(l.ServedNotAfter))
			}
		}
		for _, u := range l.Unprotected {
			fmt.Fprintf(w, "  UNPROTECTED %s\n", u)
		}
		if l.ExpiryErr != "" {
			fmt.Fprintf(w, "  ERROR %s\n", l.ExpiryErr)
		}
		for _, warn := range l.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
		if l.Pending != nil {
			since := cliapp.FormatTime(l.Pending.Since)
			if since == "" {
				since = "now (not recorded yet)"
			}
			fmt.Fprintf(w, "  PENDING SWITCH to key 3 1 1 %s since %s: safe %s\n", l.Pending.SPKI, since, cliapp.When(l.Pending.SafeAt, now))
			for _, b := range l.Pending.Blocking {
				fmt.Fprintf(w, "    blocked by %s\n", b)
			}
		}
		if l.Pending != nil || l.Scheduled != nil {
			fmt.Fprintf(w, "  completes   %s\n", completion(l, tr, now))
		}
		if tr != nil && tr.Reason != "" && l.Pending != nil && (l.Switch == nil || !l.Switch.Safe) {
			fmt.Fprintf(w, "  WARNING: %s\n", tr.Reason)
		}
		if l.Next != nil {
			// The time 'danectl rotate status' reports (deploy.LineageStatus.NextAgedAt).
			var state string
			switch {
			case !l.Next.Committed.IsZero():
				state = "committed: the next renewal uses it"
			case l.NextAgedAt.IsZero():
				state = "staged, commit refused until aged: unknown while a server blocks it ('danectl rotate status' says which)"
			case !l.NextAgedAt.After(now):
				state = fmt.Sprintf("staged, aged since %s: commit allowed ('danectl rotate commit %s')", rfc3339(l.NextAgedAt), l.Name)
			default:
				state = fmt.Sprintf("staged, commit allowed %s ('danectl rotate commit %s' then)", cliapp.When(l.NextAgedAt, now), l.Name)
			}
			fmt.Fprintf(w, "  ROTATION    next key 3 1 1 %s (%s) %s\n", l.Next.SPKI, l.Next.Algorithm, state)
		}
		for _, p := range l.Presented {
			fmt.Fprintf(w, "  presented   %s\n", p)
		}
		if l.Reload {
			fmt.Fprintf(w, "  RELOAD PENDING: %s; run dane-reload (or danectl tick)\n", l.ReloadReason)
		}
		if l.Verified != "" {
			fmt.Fprintf(w, "  verified    %s (last STARTTLS check that matched)\n", l.Verified)
		}
		if l.Err != "" {
			fmt.Fprintf(w, "  ERROR %s\n", l.Err)
		}
	}
	for _, o := range st.Owners {
		fmt.Fprintln(w)
		if o.Err != "" && o.Observation == nil {
			fmt.Fprintf(w, "owner %s: ERROR %s\n", strings.Join(append(append([]string(nil), o.Aliases...), o.Owner), " -> "), o.Err)
			continue
		}
		_ = o.Observation.WriteText(w)
		for _, a := range o.Aliases {
			fmt.Fprintf(w, "  %s is a CNAME to %s: the records are changed at %s\n", a, o.Owner, o.Owner)
		}
		if o.DNSSEC != nil {
			if o.DNSSEC.Signed {
				fmt.Fprintf(w, "  DNSSEC: signed (%s)\n", o.DNSSEC.Explanation)
			} else {
				fmt.Fprintf(w, "  DNSSEC: WARNING %s\n", o.DNSSEC.Warning)
			}
		}
		for _, r := range o.Records.Records {
			owned := ""
			for _, x := range o.Owned {
				if x == r.Record {
					owned = " (owned)"
				}
			}
			switch {
			case r.Aged:
				fmt.Fprintf(w, "  %s%s: aged\n", r.Record, owned)
			case len(r.Blocking) > 0:
				fmt.Fprintf(w, "  %s%s: NOT AGED, blocked by:\n", r.Record, owned)
				for _, b := range r.Blocking {
					fmt.Fprintf(w, "      %s\n", b)
				}
			default:
				fmt.Fprintf(w, "  %s%s: served everywhere, aged %s\n", r.Record, owned, cliapp.When(r.AgedAt, now))
			}
		}
		for _, u := range o.Unmatched {
			fmt.Fprintf(w, "  %s: matches no chain Postfix may serve (not danehook's; 'danectl prune' removes it once safe)\n", u)
		}
		for _, h := range o.Held {
			fmt.Fprintf(w, "  removal waits: %s\n", h)
		}
		if o.Err != "" {
			fmt.Fprintf(w, "  ERROR %s\n", o.Err)
		}
	}
}

// completion says which run completes a lineage's pending switch or
// staged rotation, and when: the scheduled job; else the timer tr names
// (see timerWindow: systemd's next elapse, or the packaged schedule), or
// that no timer is known to run 'danectl tick'.
func completion(l deploy.LineageStatus, tr *timerReport, now time.Time) string {
	if scheduled(l) {
		id := l.Scheduled.ID
		if l.Scheduled.Via == schedule.ViaAt {
			id = "job " + id
		}
		return fmt.Sprintf("%s %s at %s (%s): %s", l.Scheduled.Via, id, l.Scheduled.At.UTC().Format(time.RFC3339), l.Scheduled.What, l.Scheduled.Command)
	}
	why := "no run scheduled: [schedule] via = \"none\", no systemd or at here, or the time is not known yet"
	if l.ScheduleErr != "" {
		why = "scheduling a run failed: " + l.ScheduleErr
	}
	if tr == nil || tr.Unit == "" {
		return "the next 'danectl tick' (from cron, or the next hook run: no timer unit is known, --timer-unit \"\"; " + why + ")"
	}
	after, known := completesAfter(l, now)
	from, to, source, ok := timerWindow(tr, after, now)
	if !ok {
		return "only the next renewal's hooks: " + tr.Unit + " is not enabled (" + why + ")"
	}
	run := tr.Unit + "'s next 'danectl tick'"
	if known && after.After(now) {
		run = tr.Unit + "'s first 'danectl tick' after safe_at"
		if l.Pending == nil {
			run = tr.Unit + "'s first 'danectl tick' after the commit is allowed"
		}
	}
	var b strings.Builder
	if source == timerSourceSystemd {
		fmt.Fprintf(&b, "%s, at %s (systemd's next elapse of the timer", run, rfc3339(from))
	} else {
		fmt.Fprintf(&b, "%s, between %s and %s (its packaged schedule: %s", run, rfc3339(from), rfc3339(to), packagedSchedule)
		if tr.State == timerUnknown {
			b.WriteString("; systemd could not tell whether it is enabled")
		}
	}
	if !known {
		b.WriteString("; it only re-checks: when the switch becomes safe is not known while a server blocks it")
	}
	b.WriteString("; " + why + ")")
	return b.String()
}

// scheduled reports whether a job (systemd or at) is scheduled for l.
func scheduled(l deploy.LineageStatus) bool {
	return l.Scheduled != nil && l.Scheduled.Via != schedule.ViaNone
}

// completesAfter returns the time from which a run can complete l's
// pending step: now when the pending switch is safe already, else its
// safe_at, or (no switch pending) the time the rotation commit was
// scheduled for; known is false while a server blocks the switch.
func completesAfter(l deploy.LineageStatus, now time.Time) (after time.Time, known bool) {
	switch {
	case l.Pending != nil && l.Switch != nil && l.Switch.Safe:
		return now, true
	case l.Pending != nil && !l.Pending.SafeAt.IsZero():
		return l.Pending.SafeAt, true
	case l.Pending == nil && l.Scheduled != nil:
		return l.Scheduled.At, true
	}
	return now, false
}

// timerCompletes is the --json form of completion's timer run: nil when a
// job is scheduled, nothing waits, or no timer is known to run.
func timerCompletes(l deploy.LineageStatus, tr *timerReport, now time.Time) *timerRunReport {
	if scheduled(l) || (l.Pending == nil && l.Scheduled == nil) {
		return nil
	}
	after, _ := completesAfter(l, now)
	from, to, source, ok := timerWindow(tr, after, now)
	if !ok {
		return nil
	}
	return &timerRunReport{Unit: tr.Unit, Earliest: rfc3339(from), Latest: rfc3339(to), Source: source}
}
