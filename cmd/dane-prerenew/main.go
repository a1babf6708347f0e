// Command dane-prerenew is danehook's pre hook: certbot --pre-hook
// (renewal-hooks/pre), lego v5 --pre-hook, dehydrated startup_hook, acme.sh
// --pre-hook. It makes the next renewal reuse the current key: certbot
// reuse_key = True, lego's pinned CSR, dehydrated PRIVATE_KEY_RENEW="no",
// acme.sh without Le_ForceNewDomainKey (DESIGN.md §5),
// after handing a committed staged key to the client (rotate.Pin).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/rotate"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "dane-prerenew",
		Usage:     "pre hook: make renewals reuse the key the TLSA records pin",
		ArgsUsage: "[LINEAGE...]",
		Writer:    stdout,
		ErrWriter: stderr,
		Description: `For each lineage (all when none is named): certbot lineages get
reuse_key = True in renewal/<name>.conf (repaired and logged); lego lineages
with lego_csr get the pinned CSR regenerated from lego_key when it no longer
matches; dehydrated lineages get PRIVATE_KEY_RENEW="no" in the per-certificate
configuration unless it is already in effect (read by sourcing dehydrated's
configuration with bash, as dehydrated does); acme.sh lineages lose
Le_ForceNewDomainKey (--always-force-new-domain-key) from the domain
configuration. With --check nothing is changed.

Exit codes: 0 ok, 1 (--check) a lineage would renew with a new key, 2 bad input, 9 locked.`,
		Flags: []cli.Flag{
			cliapp.ConfigFlag,
			&cli.BoolFlag{Name: "check", Usage: "only report; exit 1 when a lineage is not pinned"},
		},
		Action: func(c *cli.Context) error {
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			res, err := rotate.Pin(e, c.Bool("check"), c.Args().Slice()...)
			log := cliapp.Log(c)
			bad := 0
			for _, r := range res {
				if r.OK {
					log.Info(r.Message, "lineage", r.Lineage, "file", r.File, "changed", r.Changed)
				} else {
					bad++
					log.Warn(r.Message, "lineage", r.Lineage, "file", r.File)
				}
			}
			if err != nil {
				return cliapp.Classify(err)
			}
			if bad > 0 {
				return cliapp.Fail(cliapp.ExitMismatch, fmt.Errorf("%d lineage(s) would renew with a new key", bad), "run dane-prerenew without --check")
			}
			return nil
		},
	}
	return cliapp.Run(app, args, stderr)
}
