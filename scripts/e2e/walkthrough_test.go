package e2e

import (
	"os"
	"testing"
)

// TestLabWalkthrough is scripts/lab.sh: certbot's first issuance and a
// new-key renewal through danehook's hooks, told on stdout for an operator
// (run it with -v to see the story as it happens). It asserts what
// TestClients asserts for certbot.
func TestLabWalkthrough(t *testing.T) {
	t.Parallel()
	w := newWorld(t, clients[0])
	w.story = os.Stdout
	w.say("\n== danehook lab walkthrough ==")
	w.say("BIND: primary %s and secondary %s serve %s (TLSA TTL %d s, so a record is aged 2 x %d s after the last server was first seen serving it)",
		w.bind.Primary, w.bind.Secondary, zone, w.bind.TTL, w.bind.TTL)
	w.say("Postfix: STARTTLS on %s, smtpd_tls_chain_files = %s (a self-signed key at first)", w.pf.Addr, w.chain)
	w.say("ACME: Pebble at %s; certbot runs --pre-hook dane-prerenew --deploy-hook dane-deploy --post-hook dane-reload", w.acme.DirectoryURL)
	w.say("Timer: 'danectl tick' runs every second (hourly in production)\n")
	steps := []step{
		{"first-issuance", (*world).firstIssuance},
		{"renew-new-key", func(w *world) { w.renewNewKey(true) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { w.t = t; s.fn(w) }) {
			w.say("\n== walkthrough FAILED in %s: see the test log above ==", s.name)
			return
		}
		w.say("")
	}
	w.say("== done: every renewal kept a published, aged record matching the chain Postfix served ==")
}
