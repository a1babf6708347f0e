// Package deploy holds danehook's invariant (DESIGN.md §3) and drives it:
//
//	At every instant, for every TLSA owner of a lineage, the chain Postfix
//	serves matches at least one record that is aged.
//
// It combines the leaves — tlsa (records), chain (ACME files → served
// chain), dnsupdate (providers), propagate (what each authoritative server
// serves), postfix (check, reload, STARTTLS) and state — into the steps the
// binaries run: plan and publish the desired RRsets, record and complete
// pending switches, reload Postfix once, verify the live chain, and only
// then remove owned records that no served or pending chain still needs.
//
// Every step is idempotent and runs under one exclusive lock, so a crash at
// any point is repaired by the next hook run or `danectl tick`.
package deploy
