// Command dane-reload is danehook's post hook: certbot --post-hook
// (renewal-hooks/post), lego v5 --post-hook, and the systemd timer (through
// 'danectl tick'). It completes pending switches that became safe, runs
// postfix check and one postfix reload, verifies the live STARTTLS chain and
// only then removes owned records no chain needs (DESIGN.md §4).
package main

import (
	"io"
	"os"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "dane-reload",
		Usage:     "post hook: complete safe switches, reload Postfix once, verify, then clean up records",
		Writer:    stdout,
		ErrWriter: stderr,
		Description: `Exit codes: 0 ok (switches may still be pending; see 'danectl status'),
2 bad input, 3 TSIG/auth, 4 refused, 5 not authoritative, 6 server failure,
8 postfix check/reload failed, the live chain does not match, or Postfix
reads TLS files other than the lineages' chain files (certbot's live/ files,
a snakeoil certificate: the records are published, nothing is installed,
reloaded or removed; the hint is the postconf line) — nothing is removed,
9 locked.`,
		Flags: []cli.Flag{cliapp.ConfigFlag},
		Action: func(c *cli.Context) error {
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			ctx, cancel := cliapp.Context(c, 110*time.Second)
			defer cancel()
			r, err := e.Reload(ctx)
			cliapp.LogReload(cliapp.Log(c), r)
			return cliapp.Classify(err)
		},
	}
	return cliapp.Run(app, args, stderr)
}
