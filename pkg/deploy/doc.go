// Package deploy holds danehook's invariant (DESIGN.md §3) and nothing else:
//
//	At every instant, for every TLSA owner of a lineage, the chain Postfix
//	serves matches at least one record that is aged.
//
// Every step is one locked run of observe → decide → act → save once:
//
//   - snapshot.go observes, once per run: what every authoritative server
//     serves at each owner and with which TTL (propagate), what each smtpd
//     service is configured to read and what each endpoint presents per
//     key algorithm (postfix), and the lineage's chains on disk (the
//     installed file, a pending chain, the ACME client's files).
//   - decide.go holds the pure decision functions over that snapshot:
//     the chain to serve next, the wanted records, "safe to switch" and
//     "safe to remove" (DESIGN §2), records matching no chain. They return
//     reasons, which status and plan print as the hooks act on them.
//   - guard.go holds the guardrails: untrusted issuers, Postfix reading
//     other files than the chain file, require_dnssec.
//   - reconcile.go acts: Deploy (dane-deploy), Reload (dane-reload and
//     tick), Verify, Prune; engine.go Plan and Publish; status.go Status.
//
// It consumes Publisher (publisher.go), handed in by the caller
// (cmd/internal/cliapp builds providers and reads credentials), and the
// leaves tlsa, chain, dnsupdate, propagate, postfix, certbot, config and
// state. It never imports rotate or cmd/. Decisions come from what is
// observed; the state on disk (owned records, first sightings and TTLs
// seen, pending switches, the last verified chain) explains the past and
// never substitutes for looking. Every step is idempotent, so a crash at
// any point is repaired by the next hook run or `danectl tick`.
package deploy
