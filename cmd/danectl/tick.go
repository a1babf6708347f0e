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

Exit codes: as dane-reload (0 ok, 8 Postfix failure, 3-6 DNS failures, 9 locked).`,
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

Exit codes: 0 all good, 1 something waits or does not match, 2 bad input.`,
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
