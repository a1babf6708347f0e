// Command dane-deploy is danehook's deploy hook: certbot --deploy-hook
// (renewal-hooks/deploy), lego v4 --run-hook/--renew-hook, lego v5
// --deploy-hook, acme.sh --reloadcmd/--renew-hook, dehydrated's hook
// (deploy_cert arguments; hooks/dehydrated/hook). It assembles the served chain, publishes the TLSA records
// it needs and installs it once that is safe (DESIGN.md §4).
package main

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr, os.Getenv))
}

// pinnedMessage says, per client, what Deploy repaired (DeployResult.Pinned).
var pinnedMessage = map[hookenv.Client]string{
	hookenv.Certbot:    "set reuse_key = True: certbot had written its renewal configuration without it, so the next renewal keeps this key",
	hookenv.AcmeSh:     "removed Le_ForceNewDomainKey (--always-force-new-domain-key): acme.sh had written it back, so the next renewal keeps this key",
	hookenv.Dehydrated: `set PRIVATE_KEY_RENEW="no" in the per-certificate configuration, so the next renewal keeps this key`,
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	app := &cli.App{
		Name:      "dane-deploy",
		Usage:     "deploy hook: publish TLSA records for a renewed certificate and install it when safe",
		ArgsUsage: "[deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAINFILE CHAINFILE TIMESTAMP]",
		Writer:    stdout,
		ErrWriter: stderr,
		Description: `Run by the ACME client after each issuance or renewal, with the client's
variables: certbot RENEWED_LINEAGE; lego v4 LEGO_CERT_DOMAIN, LEGO_CERT_PATH,
LEGO_CERT_KEY_PATH, LEGO_ISSUER_CERT_PATH; lego v5 LEGO_HOOK_CERT_NAME,
LEGO_HOOK_CERT_PATH, LEGO_HOOK_CERT_KEY_PATH, LEGO_HOOK_ISSUER_CERT_PATH;
acme.sh (--reloadcmd, --renew-hook) Le_Domain, CERT_PATH, CERT_KEY_PATH,
CA_CERT_PATH. dehydrated passes arguments instead: as its HOOK (or from
hooks/dehydrated/hook) dane-deploy takes "deploy_cert DOMAIN KEYFILE CERTFILE
FULLCHAINFILE CHAINFILE TIMESTAMP" and ignores every other handler (exit 0),
as dehydrated requires of a hook.

It checks the key against the certificate, publishes the records the new chain
needs, and installs the chain file only when it matches an aged record at every
TLSA owner; otherwise it records a pending switch (exit 0: the renewal itself
succeeded) that dane-reload or 'danectl tick' completes later. lego v4 has no
post hook, so under lego v4 dane-deploy also runs the reload step.

While Postfix reads TLS files that exist and are not the lineages' chain
files (certbot's live/ files, a snakeoil certificate), the ACME client's
renewal reaches senders unannounced at the next smtpd start: dane-deploy then
publishes the records, keeps the renewal as a pending switch, installs
nothing and exits 8 with the postconf line that fixes it, whether the switch
is safe, pending or not needed. Postfix serving no chain at all (the first
issuance) is a warning with the same line, exit 0.

A certificate no [lineage] manages (certbot runs directory hooks for every
certificate it renews, a web server's too) gets one info line and exit 0.

Exit codes: 0 ok or pending, 2 bad input, 3 TSIG/auth, 4 refused,
5 not authoritative, 6 server failure, 8 Postfix failure or Postfix reads
files other than the chain files, 9 locked.`,
		Flags: []cli.Flag{
			cliapp.ConfigFlag,
			&cli.BoolFlag{Name: "reload", Usage: "also run dane-reload's step (default under lego v4, which has no post hook)"},
		},
		Action: func(c *cli.Context) error {
			log := cliapp.Log(c)
			var d *hookenv.Renewal
			var err error
			if c.Args().Present() {
				// dehydrated: "$HOOK" HANDLER ARGS...
				if d, err = hookenv.FromDehydrated(c.Args().Slice()); err != nil {
					return cliapp.Classify(err)
				}
				if d == nil {
					log.Debug("dehydrated handler ignored", "handler", c.Args().First())
					return nil
				}
			} else if d, err = hookenv.FromEnv(getenv); err != nil {
				return cliapp.Classify(err)
			}
			log.Debug("hook environment", "client", string(d.Client), "lineage", d.Lineage,
				"key", d.KeyFile, "cert", d.CertFile, "issuers", strings.Join(d.IssuerFiles, ","))
			e, err := cliapp.Engine(c)
			if err != nil {
				return err
			}
			// lego kills hooks after 2 minutes.
			ctx, cancel := cliapp.Context(c, 110*time.Second)
			defer cancel()
			res, err := e.Deploy(ctx, d)
			if errors.Is(err, deploy.ErrNotConfigured) {
				// certbot runs directory hooks for every certificate it
				// renews, a web server's too: not ours, nothing to do.
				log.Info("not a lineage danehook manages: nothing to do", "lineage", d.Lineage, "client", string(d.Client), "config", e.Config.Path)
				return nil
			}
			if res != nil {
				for _, p := range res.Plans {
					if len(p.HeldAdditions) > 0 {
						log.Warn("first TLSA records not published", "owner", p.Owner, "records", len(p.HeldAdditions), "reason", p.HeldAdditionsReason)
					}
					for _, ch := range p.Changes {
						if ch.Op != dnsupdate.Keep {
							log.Info("dns change", "change", ch.String(), "zone", p.Zone, "provider", p.Provider)
						}
					}
				}
			}
			if err != nil {
				if res != nil && res.Pinned != "" {
					// Done before a refusal (Postfix reads other files).
					log.Info(pinnedMessage[d.Client], "file", res.Pinned)
				}
				return cliapp.Classify(err)
			}
			attrs := []any{"lineage", res.Lineage, "client", string(res.Client), "key", "3 1 1 " + res.SPKI, "key_changed", res.KeyChanged}
			switch {
			case res.Installed:
				log.Info("chain installed: "+res.Reason, attrs...)
			case res.Pending == nil:
				log.Info("nothing to switch: "+res.Reason, attrs...)
			default:
				log.Info("switch pending: Postfix keeps serving the previous chain until the new records are aged",
					append(attrs, "reason", res.Reason, "safe", cliapp.When(res.Pending.SafeAt, time.Now()),
						"blocking", strings.Join(res.Pending.Blocking, "; "))...)
			}
			if res.Notice != "" {
				log.Warn("postfix does not read the chain file yet: " + res.Notice)
			}
			if res.Pinned != "" {
				log.Info(pinnedMessage[d.Client], "file", res.Pinned)
			}
			if c.Bool("reload") || d.Client == hookenv.LegoV4 {
				r, err := e.Reload(ctx)
				cliapp.LogReload(log, r)
				return cliapp.Classify(err)
			}
			return nil
		},
	}
	return cliapp.Run(app, args, stderr)
}
