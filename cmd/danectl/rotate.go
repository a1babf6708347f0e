package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/rotate"
	"github.com/urfave/cli/v2"
)

// rotateCommand is "danectl rotate".
func rotateCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "staged key rotation that cannot break mail: stage, status, commit, abort",
		Description: `A rotation replaces a lineage's key without a moment where Postfix serves a
key that senders cannot match (RFC 7671 §8.1):

  danectl rotate stage LINEAGE     make the next key, publish its 3 1 1 beside the current one
  danectl rotate status [LINEAGE]  is the next record served everywhere, and since when
  danectl rotate commit LINEAGE    once aged: the next renewal uses the next key (--now: renew now)
  danectl rotate abort LINEAGE     withdraw a staged key that is not committed

After the renewal, dane-deploy installs the new chain (its record is aged),
dane-reload verifies it and removes the old key's record. RSA and ECDSA
lineages rotate independently.`,
		Subcommands: []*cli.Command{
			{
				Name:      "stage",
				Usage:     "make the next key and publish its 3 1 1 record beside the current one",
				ArgsUsage: "LINEAGE",
				Flags: []cli.Flag{
					cliapp.ConfigFlag,
					&cli.StringFlag{Name: "key-type", Usage: "`TYPE` of the next key: ecdsa or rsa (default: the current key's)"},
					&cli.IntFlag{Name: "bits", Usage: "RSA key size in `BITS` (default: the current key's, or 2048)"},
					&cli.StringFlag{Name: "curve", Usage: "ECDSA `CURVE`: P-256 or P-384 (default: the current key's)"},
				},
				Action: func(c *cli.Context) error {
					e, l, err := rotateArgs(c)
					if err != nil {
						return err
					}
					ctx, cancel := cliapp.Context(c, 2*time.Minute)
					defer cancel()
					n, plans, err := rotate.Stage(ctx, e, l, rotate.KeySpec{Type: c.String("key-type"), Bits: c.Int("bits"), Curve: c.String("curve")})
					if plans != nil {
						_ = printPlans(c.App.Writer, plans, false, err == nil)
					}
					if err != nil {
						return cliapp.Classify(err)
					}
					fmt.Fprintf(c.App.Writer, "staged %s key for %s: 3 1 1 %s (file %s)\nnext: 'danectl rotate status %s', then 'danectl rotate commit %s' once aged\n",
						n.Algorithm, l, n.SPKI, n.File, l, l)
					return nil
				},
			},
			{
				Name:      "status",
				Usage:     "per owner and server: is the next record served, since when, when it is aged, what blocks it",
				ArgsUsage: "[LINEAGE...]",
				Flags:     []cli.Flag{cliapp.ConfigFlag, cliapp.JSONFlag},
				Action: func(c *cli.Context) error {
					e, err := cliapp.Engine(c)
					if err != nil {
						return err
					}
					ctx, cancel := cliapp.Context(c, 2*time.Minute)
					defer cancel()
					rs, err := rotate.Observe(ctx, e, c.Args().Slice()...)
					if err != nil {
						return cliapp.Classify(err)
					}
					if c.Bool("json") {
						enc := json.NewEncoder(c.App.Writer)
						enc.SetIndent("", "  ")
						return enc.Encode(rs)
					}
					writeRotation(c.App.Writer, rs, time.Now())
					return nil
				},
			},
			{
				Name:      "commit",
				Usage:     "once the next key's records are aged, make the next renewal use it",
				ArgsUsage: "LINEAGE",
				Description: `Refused (exit 7) while the next key's records are not aged, naming what
blocks or when it becomes safe. With --now the key is put in place and the
renewal runs at once (renew_command, or certbot renew --force-renewal for
certbot lineages), followed by the reload step.`,
				Flags: []cli.Flag{
					cliapp.ConfigFlag,
					&cli.BoolFlag{Name: "now", Usage: "renew now instead of at the next scheduled renewal"},
				},
				Action: commitAction,
			},
			{
				Name:      "abort",
				Usage:     "withdraw a staged key that is not committed, and its records",
				ArgsUsage: "LINEAGE",
				Flags:     []cli.Flag{cliapp.ConfigFlag},
				Action: func(c *cli.Context) error {
					e, l, err := rotateArgs(c)
					if err != nil {
						return err
					}
					ctx, cancel := cliapp.Context(c, 2*time.Minute)
					defer cancel()
					plans, err := rotate.Abort(ctx, e, l)
					if plans != nil {
						_ = printPlans(c.App.Writer, plans, false, err == nil)
					}
					if err != nil {
						return rotateError(err)
					}
					fmt.Fprintf(c.App.Writer, "aborted the rotation of %s\n", l)
					return nil
				},
			},
		},
	}
}

// rotateArgs loads the engine and the one LINEAGE argument.
func rotateArgs(c *cli.Context) (*deploy.Engine, string, error) {
	if c.NArg() != 1 {
		return nil, "", fail(exitUsage, fmt.Errorf("rotate %s: want exactly one LINEAGE argument", c.Command.Name), "run 'danectl rotate "+c.Command.Name+" --help'")
	}
	e, err := cliapp.Engine(c)
	if err != nil {
		return nil, "", err
	}
	if _, err := e.Config.Lineage(c.Args().First()); err != nil {
		return nil, "", fail(exitUsage, err, "")
	}
	return e, c.Args().First(), nil
}

func rotateError(err error) error {
	switch {
	case errors.Is(err, rotate.ErrNotAged):
		return fail(exitPending, err, "wait, then run the command again; 'danectl rotate status' shows the time")
	case errors.Is(err, rotate.ErrNoStagedKey), errors.Is(err, rotate.ErrCommitted):
		return fail(exitUsage, err, "")
	}
	return cliapp.Classify(err)
}

func commitAction(c *cli.Context) error {
	e, name, err := rotateArgs(c)
	if err != nil {
		return err
	}
	ctx, cancel := cliapp.Context(c, 10*time.Minute)
	defer cancel()
	now := c.Bool("now")
	if _, err := rotate.Commit(ctx, e, name, now); err != nil {
		return rotateError(err)
	}
	w := c.App.Writer
	if !now {
		fmt.Fprintf(w, "committed the rotation of %s: the next renewal uses the staged key\n", name)
		return nil
	}
	l := e.Config.Lineages[name]
	argv, err := renewCommand(l)
	if err != nil {
		return fail(exitUsage, err, "set renew_command in the lineage's table")
	}
	fmt.Fprintf(w, "committed; renewing now: %s\n", strings.Join(argv, " "))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = w, c.App.ErrWriter
	cmd.Env = append(os.Environ(), config.EnvConfig+"="+e.Config.Path)
	if err := cmd.Run(); err != nil {
		return fail(cliapp.ExitMismatch, fmt.Errorf("renewal of %s failed: %w", name, err),
			"the key stays committed; the next scheduled renewal, or 'danectl rotate commit --now' again, retries it")
	}
	r, err := e.Reload(ctx)
	cliapp.LogReload(cliapp.Log(c), r)
	return cliapp.Classify(err)
}

// renewCommand returns the argv that renews l at once.
func renewCommand(l *config.Lineage) ([]string, error) {
	if len(l.RenewCommand) > 0 {
		return l.RenewCommand, nil
	}
	if l.CertbotLineage == "" {
		return nil, fmt.Errorf("lineage %q: no renew_command: danehook cannot guess lego's command line", l.Name)
	}
	live := filepath.Clean(l.CertbotLineage)
	return []string{"certbot", "renew", "--cert-name", filepath.Base(live), "--force-renewal",
		"--no-random-sleep-on-renew", "--config-dir", filepath.Dir(filepath.Dir(live))}, nil
}

func writeRotation(w io.Writer, rs []*rotate.Status, now time.Time) {
	for _, r := range rs {
		if r.Next == nil {
			fmt.Fprintf(w, "lineage %s: no staged key\n", r.Lineage)
			continue
		}
		state := "staged"
		if !r.Next.Committed.IsZero() {
			state = "committed " + cliapp.FormatTime(r.Next.Committed)
		}
		fmt.Fprintf(w, "lineage %s: next key 3 1 1 %s (%s, %s since %s)\n", r.Lineage, r.Next.SPKI, r.Next.Algorithm, state, cliapp.FormatTime(r.Next.Staged))
		for i, o := range r.Owners {
			if i < len(r.Observations) {
				_ = r.Observations[i].WriteText(w)
			}
			switch {
			case o.Aged:
				fmt.Fprintf(w, "  next record aged at %s (since %s)\n", o.Owner, cliapp.FormatTime(o.AgedAt))
			case len(o.Blocking) > 0:
				fmt.Fprintf(w, "  next record NOT AGED at %s, blocked by:\n", o.Owner)
				for _, b := range o.Blocking {
					fmt.Fprintf(w, "      %s\n", b)
				}
			default:
				fmt.Fprintf(w, "  next record served everywhere at %s, aged %s\n", o.Owner, cliapp.When(o.AgedAt, now))
			}
		}
		if r.Aged {
			fmt.Fprintf(w, "  commit allowed: 'danectl rotate commit %s'\n", r.Lineage)
		} else {
			fmt.Fprintf(w, "  commit refused until aged: %s\n", cliapp.When(r.AgedAt, now))
		}
	}
}
