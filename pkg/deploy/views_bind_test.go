package deploy

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// The primary's RRset is read once, unsigned, and shared with the
// propagation check only where unsigned clients see the version of the zone
// that signed UPDATEs change (sharedread.go). These tests run both shapes
// against real BIND: one view (the read is shared, nothing read signed), and
// two views chosen by the key (`match-clients { key …; }`) where the
// unsigned view differs: the engine notices, reads signed, and sends the
// UPDATE the signed view needs — never one planned from the other view.

// viewsEngine starts a BIND lab (unsignedView as bindlab.Options) and
// returns an engine with lineage "mail" at mail and mx2.example.test, its
// 3 1 1 record, and the debug lines the engine reports.
func viewsEngine(t *testing.T, unsignedView func(rec tlsa.Record) string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136, tlsa.Record, *debugLines) {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	chainFile := filepath.Join(dir, "mail.pem")
	writeFile(t, chainFile, k, c)
	sum, err := tlsa.SPKIDigest(mustLeaf(t, c))
	if err != nil {
		t.Fatal(err)
	}
	rec := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: sum[:]}
	opts := bindlab.Options{TTL: 1}
	if unsignedView != nil {
		opts.UnsignedView = unsignedView(rec)
	}
	lab := bindlab.Start(t, opts)
	text := fmt.Sprintf("state_dir = %q\n[schedule]\npublish_wait = \"0s\"\nvia = \"none\"\n[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 2\n"+
		"[lineage.mail]\nhosts = [\"mail.example.test\", \"mx2.example.test\"]\nttl = 1\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\n",
		filepath.Join(dir, "state"), lab.Primary, lab.KeyFile, lab.Port, chainFile)
	cfg, err := config.Parse(filepath.Join(dir, "danehook.toml"), []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rp := labPublisher(t, cfg)
	dl := &debugLines{}
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second, Debug: dl.add}
	return e, lab, rp, rec, dl
}

type debugLines struct {
	mu    sync.Mutex
	lines []string
}

func (d *debugLines) add(msg string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lines = append(d.lines, fmt.Sprint(append([]any{msg}, args...)...))
}

func (d *debugLines) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// signedTLSA reads owner at the primary signed with the lab key: what the
// view danehook's UPDATEs change serves.
func signedTLSA(t *testing.T, rp *dnsupdate.RFC2136, owner string) []dnsupdate.RR {
	t.Helper()
	rrs, err := rp.Records(t.Context(), owner)
	if err != nil {
		t.Fatalf("signed read of %s: %v", owner, err)
	}
	return rrs
}

// TestSharedReadOneView: with one view, each owner is read once at the
// primary, unsigned, and the plan and the propagation check share it; the
// view check passes quietly; a rerun sends 0 UPDATEs.
func TestSharedReadOneView(t *testing.T) {
	t.Parallel()
	e, lab, rp, rec, dl := viewsEngine(t, nil)
	before := lab.Counters(t, "primary")
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := lab.Counters(t, "primary")
	if got := after.Requests["UPDATE"] - before.Requests["UPDATE"]; got != 1 {
		t.Errorf("server counted %d UPDATEs, want 1", got)
	}
	if got := after.Queries["TLSA"] - before.Queries["TLSA"]; got != 2 {
		t.Errorf("primary answered %d TLSA queries for 2 owners, want one each (shared by the plan and the propagation check)", got)
	}
	if strings.Contains(dl.text(), "another view") {
		t.Errorf("one view, but the engine reported another:\n%s", dl.text())
	}
	for _, o := range []string{"_25._tcp.mail.example.test.", "_25._tcp.mx2.example.test."} {
		if rrs := signedTLSA(t, rp, o); len(rrs) != 1 || !rrs[0].Record.Equal(rec) {
			t.Errorf("%s serves %v, want %s", o, rrs, rec)
		}
	}
	rerunSendsNothing(t, e, lab)
}

// TestSharedReadTwoViews: the primary gives unsigned clients a static copy
// of the zone (serial 1000) that already serves the wanted record at mail
// (and nothing at mx2), while the signed view — the one the UPDATEs change
// — serves nothing. Planned from the unsigned view, mail would never be
// published and a rerun would add mx2 again; the engine must notice the
// views differ, say so, plan from signed reads, and send exactly the
// UPDATE the signed view needs, then none on the rerun.
func TestSharedReadTwoViews(t *testing.T) {
	t.Parallel()
	e, lab, rp, rec, dl := viewsEngine(t, func(rec tlsa.Record) string {
		return "_25._tcp.mail\tIN TLSA " + rec.String()
	})
	// The lab really serves two versions: unsigned clients see the record.
	obs, err := newChecker(e.Config.Providers["lab"], 0, false).Observe(t.Context(), "example.test.", "_25._tcp.mail.example.test.")
	if err != nil {
		t.Fatal(err)
	}
	if obs.PrimarySerial != 1000 || !obs.Servers[0].Serves(rec) {
		t.Fatalf("unsigned view: serial %d, %+v; want serial 1000 serving %s", obs.PrimarySerial, obs.Servers[0], rec)
	}
	if rrs := signedTLSA(t, rp, "_25._tcp.mail.example.test."); len(rrs) != 0 {
		t.Fatalf("signed view serves %v at mail before the run, want nothing", rrs)
	}

	before := lab.Counters(t, "primary")
	plans, err := e.Publish(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after := lab.Counters(t, "primary")
	if got := after.Requests["UPDATE"] - before.Requests["UPDATE"]; got != 1 {
		t.Errorf("server counted %d UPDATEs, want 1", got)
	}
	adds := 0
	for _, p := range plans {
		for _, c := range p.Changes {
			if c.Op == dnsupdate.Add {
				adds++
			}
		}
	}
	if adds != 2 {
		t.Errorf("plan adds %d records, want 2 (mail and mx2, from the signed view):\n%s", adds, planText(plans))
	}
	if d := dl.text(); !strings.Contains(d, "another view") || !strings.Contains(d, "example.test.") || !strings.Contains(d, "serial 1000") {
		t.Errorf("debug lines do not say the views differ (zone, serials):\n%s", d)
	}
	for _, o := range []string{"_25._tcp.mail.example.test.", "_25._tcp.mx2.example.test."} {
		if rrs := signedTLSA(t, rp, o); len(rrs) != 1 || !rrs[0].Record.Equal(rec) {
			t.Errorf("signed view serves %v at %s, want %s", rrs, o, rec)
		}
	}

	// The rerun: the unsigned view still lacks mx2's record; planned from
	// it, an UPDATE would go out again.
	rerunSendsNothing(t, e, lab)
}

// TestWatchWaitsForCatchUp: after the UPDATE the watch asks the servers
// for their serials and observes the owners once all caught up (the
// secondary's first sighting recorded), not every 50 ms while the secondary
// transfers; when the secondary never catches up (transfers blocked) it
// observes once more when the wait ends, so the primary's sighting is
// recorded and the owners were read twice, not once per round.
func TestWatchWaitsForCatchUp(t *testing.T) {
	t.Parallel()
	for _, blocked := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocked=%t", blocked), func(t *testing.T) {
			t.Parallel()
			e, lab, _, rec, _ := viewsEngine(t, nil)
			wait := 1500 * time.Millisecond
			e.PublishWait = &wait
			if blocked {
				lab.BlockTransfers(t)
			}
			before := lab.Counters(t, "primary")
			start := time.Now()
			if _, err := e.Publish(t.Context()); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			after := lab.Counters(t, "primary")
			// 2 owners: the run's read, then the watch's observation(s).
			if got := after.Queries["TLSA"] - before.Queries["TLSA"]; got != 4 {
				t.Errorf("primary answered %d TLSA queries in %v, want 4 (read once, observed once after the UPDATE)", got, took)
			}
			if blocked != (took >= wait) {
				t.Errorf("Publish took %v with the wait %v, blocked %t", took, wait, blocked)
			}
			st := &DNSState{}
			if _, err := e.Store.Load(dnsDoc, st); err != nil {
				t.Fatal(err)
			}
			seen := st.Seen.Owners["_25._tcp.mail.example.test."][strings.ToLower(rec.String())]
			if _, ok := seen[lab.Primary]; !ok {
				t.Errorf("the primary's first sighting is not recorded: %v", seen)
			}
			if _, ok := seen[lab.Secondary]; ok == blocked {
				t.Errorf("secondary sighting recorded %t with transfers blocked %t: %v", ok, blocked, seen)
			}
		})
	}
}
