// Package chaos holds danehook's randomized scenario runner (issue 11,
// "Randomized scenarios"): each sequence draws a list of operations from a
// seed (math/rand/v2) — certbot and lego v5 renewals with the same or a new
// key, renewals without hooks, `danectl rotate stage/commit/abort`,
// configuration edits (ttl, usages with a 2 1 1 of the issuer, hosts, a
// moved chain file), foreign records at the owner, faults (secondary
// stopped, transfers blocked, a REFUSED primary, SIGKILL of a hook or a
// tick, a failing `postfix check`) and the timer at random intervals — and
// runs them against the real lab: BIND primary and secondary with the zone
// signed, unbound as a caching validating resolver, Postfix, Pebble, the
// real ACME client and danehook's binaries built from the tree.
//
// The judge is Postfix's own DANE client (internal/judgelab,
// posttls-finger -l dane-only through the resolver). The runner checks
// after every step and at every judge sample that the judge verifies
// whenever a TLSA RRset exists, and at the end, once faults are cleared
// and `danectl tick` ran until nothing changes (bounded), that the state
// converged: Postfix serves the lineage's newest chain and no record
// danehook published matches no chain.
//
// Run the CI seed list, one seed, or more:
//
//	go test -count=1 ./scripts/chaos -run TestChaos
//	SEED=17 go test -count=1 -v ./scripts/chaos -run TestChaos
//	CHAOS_SEEDS=20 go test -count=1 ./scripts/chaos -run TestChaos
//	CHAOS_DURATION=30m go test -count=1 -timeout 40m ./scripts/chaos -run TestChaos
//	scripts/chaos.sh -seeds 20 -duration 30m
//
// Every sequence prints one result line ("chaos: seed N ... PASS|FAIL ...")
// and the test ends with a summary line: sequences, steps, judge samples,
// failures. A failed sequence prints its seed, its operations and the
// judge's timeline, so `SEED=N` replays it (the lab's timing is real, so
// a replay draws the same operations but may interleave differently).
// Outside CI a missing component skips; under CI=true it fails.
package chaos
