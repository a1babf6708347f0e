// Package e2e holds danehook's end-to-end tests: the real binaries
// (dane-prerenew, dane-deploy, dane-reload, danectl) wired as hooks into real
// ACME clients (certbot, lego v5, lego v4, dehydrated) talking to Pebble, publishing TLSA
// records at a real BIND primary and secondary, and switching a real Postfix.
//
// The tests live in *_test.go files; this package has no API. Run them with
//
//	go test -count=1 ./scripts/e2e/
//
// TestClients runs issuance, renewals and faults per client; TestRotate runs
// `danectl rotate` (stage, status, commit, commit --now) with certbot and
// lego v5 and prints each rotation's latency against its floor as
// "rotation latency: X s, floor Y s, ratio Z". TestIssuerSetSwitch runs
// ta = "issuer-set" with lego v5 against three Pebbles (three
// intermediates): a renewal onto a member and one onto a non-member, judged
// throughout. TestSharedOwner runs two and three danehook installations,
// each with its own Postfix, whose TLSA owners are CNAMEs to one shared
// name (issue 14, the host_id ownership registry): the same key and
// different keys, renewals and rotations interleaved, with and without
// prerequisites = true, judged for every host; its negative control runs
// without host_id and requires the judge to see the outage.
// TestLabWalkthrough (run by
// scripts/lab.sh) tells the story of one key rotation on stdout;
// TestBenchHooksSetup (run by scripts/bench-hooks.sh) measures the hooks
// against a hand-written shell pipeline with hyperfine. Outside CI a missing
// tool skips a test; under CI=true it fails it.
//
// The binaries are built from the repository unless DANEHOOK_BIN_DIR names
// a directory holding installed ones (scripts/pkgtest: /usr/bin). With
// DANEHOOK_HOOKS_DIR (/usr/share/danehook/hooks, or the repository's hooks/)
// certbot worlds link the hook wrappers with `danectl init certbot` and
// issue with them instead of naming the binaries.
package e2e
