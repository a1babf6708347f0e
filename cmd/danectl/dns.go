package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
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
		ArgsUsage: "[LINEAGE...]",
		Description: `status asks every authoritative server of each owner (the NS RRset plus
hidden secondaries) for its SOA serial and TLSA records, records when each
server was first seen serving each record, and tells whether the desired
records are aged (served everywhere for 2 x TTL) or when they will be. It also
shows pending switches and whether the zone is DNSSEC-signed.

Exit codes: 0 everything aged and nothing pending, 1 something waits or
fails, 2 bad input.`,
		Flags:  []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag},
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

func printPlans(w io.Writer, plans []*deploy.OwnerPlan, asJSON, applied bool) error {
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
			out = append(out, j)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var zones []string
	zoneMessages := map[string]int{}
	for _, p := range plans {
		if _, ok := zoneMessages[p.Zone]; !ok && p.ZoneMessages > 0 {
			zones = append(zones, p.Zone)
			zoneMessages[p.Zone] = p.ZoneMessages
		}
		verb := "no change"
		adds, removes := 0, 0
		for _, ch := range p.Changes {
			switch ch.Op {
			case dnsupdate.Add:
				adds++
			case dnsupdate.Remove:
				removes++
			}
		}
		if adds+removes > 0 {
			verb = fmt.Sprintf("%d to add, %d to remove", adds, removes)
			if !applied {
				verb += " (not applied)"
			}
			if applied {
				verb = fmt.Sprintf("%d added, %d removed", adds, removes)
			}
		}
		fmt.Fprintf(w, "%s (zone %s, provider %s, lineages %s): %s\n", p.Owner, p.Zone, p.Provider, strings.Join(p.Lineages, ", "), verb)
		for _, ch := range p.Changes {
			fmt.Fprintf(w, "  %s\n", ch)
		}
		for _, h := range p.Held {
			fmt.Fprintf(w, "  held: %s (waiting for 'dane-reload' to verify the new chain)\n", h)
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
	return nil
}

func statusAction(c *cli.Context) error {
	e, err := cliapp.Engine(c)
	if err != nil {
		return err
	}
	ctx, cancel := cliapp.Context(c, 2*time.Minute)
	defer cancel()
	st, err := e.Status(ctx, c.Args().Slice()...)
	if err != nil {
		return cliapp.Classify(err)
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		writeStatus(w, st, time.Now())
	}
	if !st.OK() {
		return fail(exitMismatch, fmt.Errorf("danectl: waiting: %s", st.Waiting()), "")
	}
	return nil
}

// writeStatus prints the status report for people.
func writeStatus(w io.Writer, st *deploy.Status, now time.Time) {
	for _, l := range st.Lineages {
		fmt.Fprintf(w, "lineage %s\n", l.Name)
		served := "none yet"
		if l.Served != "" {
			served = "3 1 1 " + l.Served
		}
		fmt.Fprintf(w, "  chain file  %s (key %s)\n", l.ChainFile, served)
		if l.Pending != nil {
			fmt.Fprintf(w, "  PENDING SWITCH to key 3 1 1 %s since %s: safe %s\n", l.Pending.SPKI, l.Pending.Since.Local().Format(time.DateTime), cliapp.When(l.Pending.SafeAt, now))
			for _, b := range l.Pending.Blocking {
				fmt.Fprintf(w, "    blocked by %s\n", b)
			}
		}
		if l.Next != nil {
			state := "staged, commit when aged ('danectl rotate status')"
			if !l.Next.Committed.IsZero() {
				state = "committed: the next renewal uses it"
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
			fmt.Fprintf(w, "owner %s: ERROR %s\n", o.Owner, o.Err)
			continue
		}
		_ = o.Observation.WriteText(w)
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
