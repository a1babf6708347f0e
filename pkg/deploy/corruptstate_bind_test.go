package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Issue 9 item 10, "recovering from a corrupt dns.json … loses ownership
// of every record", end to end through the Engine against real BIND
// (primary + secondary) and a real Postfix.

// hintCommand returns the shell command of a state error's hint ("…
// 'mv A B' restores it"), "" when there is none.
func hintCommand(msg string) string {
	i := strings.Index(msg, "'mv ")
	if i < 0 {
		return ""
	}
	j := strings.Index(msg[i+1:], "'")
	if j < 0 {
		return ""
	}
	return msg[i+1 : i+1+j]
}

// switchKey carries a new-key renewal through publish → age → switch →
// verify → cleanup and returns the Reload's removals.
func switchKey(t *testing.T, e *Engine, pf *postfixlab.Lab, what string) (next string, removed []string) {
	t.Helper()
	d, next := newKeyRenewal(t, "ecdsa")
	if res, err := e.Deploy(t.Context(), d); err != nil || res.Installed {
		t.Fatalf("%s: Deploy of a new key: %+v, %v; want a pending switch", what, res, err)
	}
	waitAged(t, e)
	r, err := e.Reload(t.Context())
	if err != nil || len(r.Switched) != 1 {
		t.Fatalf("%s: Reload: %+v, %v; want the renewal switched", what, r, err)
	}
	if got := tlsa.SPKIDigestHex(presentedLeaf(t, pf, postfix.ECDSA)); got != next {
		t.Fatalf("%s: Postfix presents %s, want %s", what, short(got), short(next))
	}
	return next, r.Removed
}

// labUpdates is how many UPDATE messages e's lab provider sent so far.
func labUpdates(e *Engine) int64 {
	return e.Publishers["lab"].(*dnsupdate.RFC2136).Sent().Updates
}

// TestCorruptDNSStateRecovery: dns.json is damaged right after a run
// published a record (the deploy hook of a new key). The next run
// (Reload, the timer) refuses: an error naming the file and the way out,
// and nothing sent or installed.
//
// With the .prev copy intact the hint is the mv command that restores it;
// after that command no record danehook published is disowned: the
// pending switch completes and removes the previous key's record, and a
// later switch removes the record published by the run whose write was
// damaged. Two shapes: the deploy hook watches its record reach both
// servers (publish_wait, so its last write adds sightings after the write
// that owned the record), and it does not (publish_wait = 0: the owning
// write is the run's last, and a copy one write behind would lack it).
//
// With the copy damaged too the hint is to move the file aside and use
// danectl prune: after that the switches complete, tick removes none of
// the records published before (danehook owns none of them), status lists
// each as matching no chain once no chain needs it, and prune removes it.
func TestCorruptDNSStateRecovery(t *testing.T) {
	for _, tc := range []struct {
		name            string
		watch, copyGood bool
	}{
		{"restore/publish_wait", true, true},
		{"restore/no watch", false, true},
		{"move aside", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			corruptDNSState(t, tc.watch, tc.copyGood)
		})
	}
}

func corruptDNSState(t *testing.T, watch, copyGood bool) {
	e, _, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	if !watch {
		var zero time.Duration
		e.PublishWait = &zero
	}
	first := verifiedLab(t, e)

	d, second := newKeyRenewal(t, "ecdsa")
	if res, err := e.Deploy(t.Context(), d); err != nil || res.Installed {
		t.Fatalf("Deploy of a new key: %+v, %v; want a pending switch", res, err)
	}
	path := filepath.Join(e.Store.Dir, dnsDoc+".json")
	damaged := []string{path}
	if !copyGood {
		damaged = append(damaged, path+".prev")
	}
	for _, p := range damaged {
		if err := os.WriteFile(p, []byte(`{"owned": {"_25._tcp.mail.exa`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	chainBefore, _ := os.ReadFile(e.Config.Lineages["ecdsa"].ChainFile)
	sent := labUpdates(e)
	_, err := e.Reload(t.Context())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Reload with a corrupt dns.json: %v; want an error naming %s", err, path)
	}
	if got := labUpdates(e); got != sent {
		t.Errorf("Reload with a corrupt dns.json sent %d UPDATE(s)", got-sent)
	}
	if after, _ := os.ReadFile(e.Config.Lineages["ecdsa"].ChainFile); string(after) != string(chainBefore) {
		t.Error("Reload with a corrupt dns.json replaced the chain file")
	}

	cmd := hintCommand(err.Error())
	switch {
	case copyGood && cmd == "":
		t.Fatalf("Reload with a corrupt dns.json and an intact copy: no mv command in %v", err)
	case !copyGood && (cmd != "" || !strings.Contains(err.Error(), "move it aside") || !strings.Contains(err.Error(), "danectl prune")):
		t.Fatalf("Reload with dns.json and its copy corrupt: %v; want the move-aside and prune hint", err)
	case !copyGood:
		cmd = "mv " + path + " " + path + ".damaged"
	}
	// The operator follows the hint.
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	waitAged(t, e)
	r, err := e.Reload(t.Context())
	if err != nil || len(r.Switched) != 1 {
		t.Fatalf("Reload after the recovery: %+v, %v; want the pending switch completed", r, err)
	}
	if !copyGood {
		// Nothing is owned: tick removes nothing; the previous key's record
		// matches no chain now, and prune removes it.
		if len(r.Removed) != 0 {
			t.Fatalf("Reload after moving dns.json aside removed %v, records danehook no longer owns", r.Removed)
		}
		pruneOnly(t, e, first)
		_, removed := switchKey(t, e, pf, "the switch after")
		if len(removed) != 0 {
			t.Fatalf("the next switch removed %v, records danehook no longer owns", removed)
		}
		pruneOnly(t, e, second)
		return
	}
	if len(r.Removed) != 1 || !strings.Contains(r.Removed[0], first) {
		t.Errorf("Reload after the restore removed %v; want the previous key's record %s (owned)", r.Removed, short(first))
	}
	_, removed := switchKey(t, e, pf, "the switch after")
	if len(removed) != 1 || !strings.Contains(removed[0], second) {
		t.Errorf("the next switch removed %v; want the record of %s, published by the run whose dns.json was damaged", removed, short(second))
	}
}

// pruneOnly checks that status lists exactly the record of key (3 1 1
// data) as matching no chain and that Prune, once the served record is
// aged, removes exactly it.
func pruneOnly(t *testing.T, e *Engine, key string) {
	t.Helper()
	st, err := e.Status(t.Context())
	if err != nil || len(st.Owners) != 1 || len(st.Owners[0].Unmatched) != 1 || !strings.Contains(st.Owners[0].Unmatched[0], key) {
		t.Fatalf("status: %v; want only %s listed as matching no chain, got %+v", err, short(key), st)
	}
	waitAgedOwner(t, e, owner)
	p, err := e.Prune(t.Context())
	if err != nil || len(p.Removed) != 1 || !strings.Contains(p.Removed[0], key) || len(p.Kept) != 0 {
		t.Fatalf("Prune: %+v, %v; want only %s removed", p, err, short(key))
	}
}
