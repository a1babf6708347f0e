package main

import (
	"fmt"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
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

A lineage configured before its first issuance is reported (one info line)
and skipped; a first chain file installed while Postfix serves no chain is a
warning with the postconf line, not an error.

Exit codes: as dane-reload: 0 ok (switches may still be pending), 2 bad
input, 3 TSIG/authentication failure, 4 refused, 5 not authoritative,
6 server failure, 8 postfix check/reload failed or the live chain does not
match, 9 locked.`,
		Flags: []cli.Flag{cliapp.ConfigFlag},
		Action: func(c *cli.Context) error {
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			ctx, cancel := cliapp.Context(c, 5*time.Minute)
			defer cancel()
			log := cliapp.Log(c)
			r, err := e.Reload(ctx)
			cliapp.LogReload(log, r)
			if err != nil {
				// No rotation while what is served is not verified.
				return cliapp.Classify(err)
			}
			done, err := rotate.Policy(ctx, e)
			for _, a := range done {
				log.Info("rotate_every: " + a)
			}
			return cliapp.Classify(err)
		},
	}
}

// checkCommand is "danectl check".
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check DNS at every authoritative server and the live STARTTLS chain, changing nothing",
		ArgsUsage: "[LINEAGE...]",
		Description: `check is a local danecheck: 'danectl status' plus a STARTTLS handshake to
every configured endpoint, matched against the records the provider serves.

A lineage configured before its first issuance is reported as not issued
yet and does not change the exit code.

Exit codes: 0 all good; 1 something waits (a pending switch, a record not
aged yet, a reload pending); 8 the live STARTTLS chain does not match an aged
record, or an endpoint does not answer; 2 bad input; 3 TSIG/authentication
failure, 4 refused, 5 not authoritative, 6 server failure; 9 another danehook
run holds the lock.`,
		Flags: []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag},
		Action: func(c *cli.Context) error {
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
			writeStatus(c.App.Writer, st, time.Now())
			checks, verr := e.Verify(ctx, c.Args().Slice()...)
			fmt.Fprintln(c.App.Writer)
			fmt.Fprintln(c.App.Writer, "live STARTTLS checks:")
			for _, v := range checks {
				fmt.Fprintf(c.App.Writer, "  ok %s\n", v)
			}
			if verr != nil {
				fmt.Fprintf(c.App.Writer, "  FAILED %v\n", verr)
				return cliapp.Classify(verr)
			}
			if !st.OK() {
				return fail(exitMismatch, fmt.Errorf("danectl: waiting: %s", st.Waiting()), "")
			}
			return nil
		},
	}
}
