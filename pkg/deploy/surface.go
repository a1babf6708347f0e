package deploy

import (
	"context"
	"errors"
	"time"

	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// This file is the small surface that packages built on the invariant
// (pkg/rotate) use: the lock, a lineage's state, and the two DNS steps a
// rotation needs — publishing what a lineage's chains and staged key need,
// and withdrawing records — each deciding exactly as Deploy and Reload do.
// Methods that change state or DNS require the caller to hold the lock.

// Lock takes the one exclusive lock every danehook run holds while it
// reads and changes state, DNS or the served chain, waiting up to LockWait
// (DefaultLockWait when 0). The error wraps state.ErrLocked when another
// run holds it that long. Callers Unlock it when done.
func (e *Engine) Lock() (*state.Lock, error) { return e.lock() }

// Time is the engine's clock: Now when set, else time.Now.
func (e *Engine) Time() time.Time { return e.now() }

// LineageState reads the state of the named lineage (<state dir>/<name>.json);
// a lineage without state yet is an empty LineageState. Callers that change
// it hold the lock and write it back with SaveLineageState.
func (e *Engine) LineageState(name string) (*LineageState, error) { return e.loadLineage(name) }

// SaveLineageState writes st as the named lineage's state, atomically.
// Callers hold the lock.
func (e *Engine) SaveLineageState(name string, st *LineageState) error {
	return e.Store.Save(name, st)
}

// PublishLineage observes every owner and sends the additions at the named
// lineage's owners that the chains it may serve, and its staged key, need
// (what Publish does for one lineage, without taking the lock: callers
// hold it). It never removes a record. The plans returned are those sent;
// on error the records already sent stay owned.
func (e *Engine) PublishLineage(ctx context.Context, lineage string) ([]*OwnerPlan, error) {
	s, err := e.observe(ctx, observeOpts{})
	if err != nil {
		return nil, err
	}
	lv := s.lineage(lineage)
	if lv == nil {
		_, err := e.Config.Lineage(lineage)
		return nil, err
	}
	if lv.Err != nil {
		return nil, lv.Err
	}
	want, err := e.wanted(s, e.candidates(s))
	if err != nil {
		return nil, err
	}
	plans, err := e.addPlans(s, want, lv.Refs)
	if err != nil {
		return plans, errors.Join(err, e.save(s))
	}
	if err := e.apply(ctx, s, plans); err != nil {
		return plans, errors.Join(err, e.save(s))
	}
	return plans, e.save(s)
}

// Withdraw observes, verifies what Postfix presents without reloading it,
// and removes the owned records that no chain Postfix may serve relies on,
// as Reload's last step decides (callers hold the lock). withdrawn are
// records of keys that were never in any chain (an aborted staged key,
// already dropped from the lineage's state): they go even when what Postfix
// presents cannot be verified. The plans hold the removals sent and the
// records held back with the reason.
func (e *Engine) Withdraw(ctx context.Context, withdrawn ...tlsa.Record) ([]*OwnerPlan, error) {
	return e.removeUnneeded(ctx, withdrawn...)
}

// OwnerAge is how far one record is aged at one TLSA owner.
type OwnerAge struct {
	Owner string
	// Status says which servers serve the record, since when, when it is
	// aged and what blocks it; zero when Err is set.
	Status propagate.Status
	// Observation is what every authoritative server of the owner serves;
	// nil when Err is set.
	Observation *propagate.Observation
	// Err is set when the owner could not be observed.
	Err error
}

// RecordAge observes every owner of the named lineage and returns, per
// owner in order, how far rec is aged there (DESIGN §3: served by every
// authoritative server for 2 × TTL). It records and saves first sightings,
// so callers hold the lock. Errors are those of reading the state or an
// unknown lineage; an owner that cannot be observed has its Err set.
func (e *Engine) RecordAge(ctx context.Context, lineage string, rec tlsa.Record) ([]OwnerAge, error) {
	s, err := e.observe(ctx, observeOpts{})
	if err != nil {
		return nil, err
	}
	lv := s.lineage(lineage)
	if lv == nil {
		_, err := e.Config.Lineage(lineage)
		return nil, err
	}
	var out []OwnerAge
	for _, r := range lv.Refs {
		ov := s.owner(r.Owner)
		if ov.Err != nil {
			out = append(out, OwnerAge{Owner: r.Owner, Err: ov.Err})
			continue
		}
		out = append(out, OwnerAge{Owner: r.Owner, Status: propagate.Age(ov.Obs, s.DNS.Seen, rec, s.Now), Observation: ov.Obs})
	}
	return out, e.saveDNS(s)
}
