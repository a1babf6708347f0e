package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// This file holds what brings a switch to its physical floor (issue 15):
// after an UPDATE the run keeps observing every authoritative server until
// each serves the new records (watchPublished), so that first sightings are
// recorded when they happen; and before saving, each lineage whose pending
// switch (or, with rotate_every, staged key's commit) becomes possible at a
// known time gets a run scheduled at that time (scheduleRuns), instead of
// waiting for the timer's next tick. Removals need no schedule: the run that
// switches removes, once it verified the switch.

// watchInterval is the pause between two observations of watchPublished:
// NOTIFY and IXFR usually bring a record to a secondary within 100 ms.
const watchInterval = 50 * time.Millisecond

// publishWait returns how long a run watches after publishing.
func (e *Engine) publishWait() time.Duration {
	if e.PublishWait != nil {
		return *e.PublishWait
	}
	return e.Config.Schedule.Wait()
}

// watchPublished observes the owners of adds (successful Add changes)
// until every authoritative server of each owner serves each added record
// or publishWait passes (or ctx ends): every watchInterval it asks each
// zone's servers for their serial, and observes the zone's owners once all
// have caught up with the primary (and once more when the wait ends
// first).
// Every observation goes into s.DNS.Seen at the time it was made, and
// replaces the owner's observation in s for the rest of the run. A server
// that never serves a record in time is not an error here: aging names it.
func (e *Engine) watchPublished(ctx context.Context, s *snapshot, adds []dnsupdate.Change) {
	wait := e.publishWait()
	if wait <= 0 {
		return
	}
	todo := map[string][]tlsa.Record{}
	for _, c := range adds {
		if c.Op != dnsupdate.Add {
			continue
		}
		// Keyed by the snapshot's name of the owner (the CNAME target when
		// the owner is an alias).
		if ov := s.owner(c.Owner); ov != nil {
			todo[ov.Owner] = append(todo[ov.Owner], c.Record)
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// A round observes a zone's owners only once every server of the zone
	// has the primary's serial (propagate.Checker.CaughtUp: one SOA query
	// per server), not every 50 ms while a secondary transfers: 1,000 owners
	// on two servers are 2,000 TLSA queries per round. Aging counts from the
	// last server's first sighting, which the observation after the
	// catch-up records within one interval. When the wait ends first, one
	// last observation records what the servers serve by then.
	defer func() {
		if len(todo) == 0 || parent.Err() != nil {
			return
		}
		fctx, fcancel := context.WithTimeout(parent, finalWatchTimeout)
		defer fcancel()
		e.watchRound(fctx, s, todo, true)
	}()
	for len(todo) > 0 {
		if e.watchRound(ctx, s, todo, false) {
			return
		}
		if len(todo) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(watchInterval):
		}
	}
}

// finalWatchTimeout bounds the last observation of watchPublished.
const finalWatchTimeout = 5 * time.Second

// watchRound is one round of watchPublished over the owners of todo:
// per zone, unless final, nothing when a server has not caught up yet;
// else one observation of its owners, kept in s and s.DNS.Seen, and the
// owners served everywhere are dropped from todo. It returns true when
// ctx ended.
func (e *Engine) watchRound(ctx context.Context, s *snapshot, todo map[string][]tlsa.Record, final bool) bool {
	type zoneKey struct{ provider, zone string }
	// One observation per zone and round (propagate.ObserveOwners): the
	// zone's SOA and NS once, then the owners' TLSA queries.
	{
		groups := map[zoneKey][]*ownerView{}
		for owner := range todo {
			ov := s.owner(owner)
			if ov == nil || ov.Zone == "" || e.Config.Providers[ov.Provider] == nil {
				delete(todo, owner)
				continue
			}
			k := zoneKey{ov.Provider, ov.Zone}
			groups[k] = append(groups[k], ov)
		}
		for k, ovs := range groups {
			owners := make([]string, len(ovs))
			for i, ov := range ovs {
				owners[i] = ov.Owner
			}
			ck := e.zoneChecker(k.provider, 0, false)
			if !final {
				if ok, err := ck.CaughtUp(ctx, k.zone); err != nil || !ok {
					if ctx.Err() != nil {
						return true
					}
					continue
				}
			}
			obs, err := ck.ObserveOwners(ctx, k.zone, owners)
			if err != nil {
				if ctx.Err() != nil {
					return true
				}
				continue
			}
			now := e.now()
			for i, ov := range ovs {
				obs[i].ConfiguredTTL = ov.TTL
				s.DNS.Seen.Update(obs[i], now)
				ov.Obs = obs[i]
				if servedEverywhere(obs[i], todo[ov.Owner]) {
					delete(todo, ov.Owner)
				}
			}
		}
	}
	return false
}

// servedEverywhere reports whether every server of obs answers and serves
// every record of recs.
func servedEverywhere(obs *propagate.Observation, recs []tlsa.Record) bool {
	if len(obs.Servers) == 0 {
		return false
	}
	for _, sv := range obs.Servers {
		if !sv.OK() || sv.Lagging {
			return false
		}
		for _, r := range recs {
			if !sv.Serves(r) {
				return false
			}
		}
	}
	return true
}

// dueAt returns when lv's next step becomes possible and what it is: the
// pending switch's SafeAt as this run decided it, or (with rotate_every)
// the time the staged key's records are aged at every owner, whichever
// comes first; zero when
// nothing waits for a known time (a blocked server: the timer retries).
func (e *Engine) dueAt(s *snapshot, lv *lineageView) (time.Time, string) {
	var due time.Time
	var what string
	// The safe time of a switch this run decided, never one the state
	// remembers from an earlier run (Publish and rotate stage do not decide
	// switches).
	if p := lv.State.Pending; p != nil && lv.Decided && !p.SafeAt.IsZero() {
		due, what = p.SafeAt, "switch to 3 1 1 "+p.SPKI
	}
	if n := lv.State.Next; n != nil && n.Committed.IsZero() && lv.L.RotateEvery > 0 {
		if at := e.nextAgedAt(s, lv, n); !at.IsZero() && (due.IsZero() || at.Before(due)) {
			due, what = at, "commit the staged key 3 1 1 "+n.SPKI
		}
	}
	return due, what
}

// nextAgedAt is when the staged key's record is aged at every owner of lv,
// zero while any owner blocks it.
func (e *Engine) nextAgedAt(s *snapshot, lv *lineageView, n *NextKey) time.Time {
	rec, err := n.Record()
	if err != nil {
		return time.Time{}
	}
	var at time.Time
	for _, r := range lv.Refs {
		ov := s.owner(r.Owner)
		if ov == nil || ov.Obs == nil {
			return time.Time{}
		}
		st := propagate.Age(ov.Obs, s.DNS.Seen, rec, s.Now)
		if st.AgedAt.IsZero() {
			return time.Time{}
		}
		at = later(at, st.AgedAt)
	}
	return at
}

// scheduleRuns gives every lineage whose next step is due at a known
// future time a completing run at that time (Engine.Scheduler), replacing
// an earlier one; a lineage already scheduled for that time keeps its
// entry. The entry is kept in the lineage's state (Scheduled) for status.
// A failure to schedule is kept in ScheduleErr and never fails the run:
// the timer still completes it.
func (e *Engine) scheduleRuns(s *snapshot) {
	if e.Scheduler == nil {
		return
	}
	now := e.now()
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			continue
		}
		st := lv.State
		due, what := e.dueAt(s, lv)
		if due.IsZero() || !due.After(now) {
			if st.Scheduled != nil && st.Scheduled.At.Before(now) {
				st.Scheduled = nil
			}
			continue
		}
		// An entry for the same moment is kept; one that comes earlier than
		// due would only find the switch not yet safe (and might be the run
		// in progress), so it is replaced.
		if old := st.Scheduled; old != nil && old.Via == e.Scheduler.Via() && old.At.After(now) &&
			!old.At.Before(due) && old.At.Sub(due) < time.Second {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		entry, err := e.Scheduler.Schedule(ctx, lv.L.Name, due, e.tickCommand(), e.tickEnv(), st.Scheduled)
		cancel()
		if err != nil {
			st.ScheduleErr = err.Error()
			continue
		}
		entry.What = what
		st.Scheduled, st.ScheduleErr = entry, ""
	}
}

// tickCommand is the completing run: Engine.TickCommand, else danectl
// beside the running program (or from PATH) with this configuration.
func (e *Engine) tickCommand() []string {
	if len(e.TickCommand) > 0 {
		return slices.Clone(e.TickCommand)
	}
	prog := "danectl"
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "danectl"); fileExists(p) {
			prog = p
		}
	}
	argv := []string{prog, "tick"}
	if e.Config.Path != "" {
		if abs, err := filepath.Abs(e.Config.Path); err == nil {
			argv = append(argv, "--config", abs)
		}
	}
	return argv
}

// tickEnv is the environment the completing run needs beyond the default:
// the state directory when it comes from the environment.
func (e *Engine) tickEnv() []string {
	if v := os.Getenv(config.EnvStateDir); v != "" {
		return []string{config.EnvStateDir + "=" + v}
	}
	return nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
