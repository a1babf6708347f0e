package rotate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/propagate"
)

// Status tells, for one lineage, whether its staged key's record is
// served everywhere and aged.
type Status struct {
	Lineage string          `json:"lineage"`
	Next    *deploy.NextKey `json:"next,omitempty"`
	// Owners holds, per owner, the staged record's status: which servers
	// serve it, first sightings, when it is aged, what blocks it.
	Owners []propagate.Status `json:"owners,omitempty"`
	// Observations are what every server of each owner serves.
	Observations []*propagate.Observation `json:"observations,omitempty"`
	// Aged is true when the record is aged at every owner.
	Aged bool `json:"aged"`
	// AgedAt is when the last owner becomes aged; zero while blocked.
	AgedAt time.Time `json:"aged_at,omitzero"`
	// Blocking names what keeps the commit from being allowed.
	Blocking []string `json:"blocking,omitempty"`
}

// Observe is `danectl rotate status`: it observes every owner of the named
// lineages (all when empty) and reports their staged keys, in order. It
// records first sightings, under the lock.
func Observe(ctx context.Context, e *deploy.Engine, names ...string) ([]*Status, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	lk, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	var out []*Status
	for _, l := range ls {
		st, err := e.LineageState(l.Name)
		if err != nil {
			return out, err
		}
		rs, err := status(ctx, e, l, st)
		if err != nil {
			return out, err
		}
		out = append(out, rs)
	}
	return out, nil
}

// status reports l's staged key (callers hold the lock).
func status(ctx context.Context, e *deploy.Engine, l *config.Lineage, st *deploy.LineageState) (*Status, error) {
	rs := &Status{Lineage: l.Name, Next: st.Next}
	if st.Next == nil {
		return rs, nil
	}
	rec, err := st.Next.Record()
	if err != nil {
		return nil, fmt.Errorf("lineage %q: staged key: %w", l.Name, err)
	}
	ages, err := e.RecordAge(ctx, l.Name, rec)
	if err != nil {
		return nil, err
	}
	rs.Aged = true
	known := true
	for _, a := range ages {
		if a.Err != nil {
			rs.Aged, known = false, false
			rs.Blocking = append(rs.Blocking, fmt.Sprintf("%s: %v", a.Owner, a.Err))
			continue
		}
		rs.Observations = append(rs.Observations, a.Observation)
		rs.Owners = append(rs.Owners, a.Status)
		if !a.Status.Aged {
			rs.Aged = false
			for _, b := range a.Status.Blocking {
				rs.Blocking = append(rs.Blocking, a.Owner+": "+b)
			}
			if a.Status.AgedAt.IsZero() {
				known = false
			} else {
				rs.Blocking = append(rs.Blocking, fmt.Sprintf("%s: aged at %s", a.Owner, a.Status.AgedAt.UTC().Format(time.RFC3339)))
			}
		}
		if a.Status.AgedAt.After(rs.AgedAt) {
			rs.AgedAt = a.Status.AgedAt
		}
	}
	if !known {
		rs.AgedAt = time.Time{}
	}
	return rs, nil
}

// Commit is `danectl rotate commit`: refused (ErrNotAged, naming what
// blocks or when it becomes safe; ErrNoStagedKey without a staged key)
// unless the staged key's record is aged at every owner. It then records
// the commitment and makes the next renewal use the staged key: lego's key
// file (lego_key, and lego_csr made from it) is replaced now, because lego
// reads them before its pre hook; certbot's key is swapped by dane-prerenew
// right before the renewal (Pin), or now with swapNow (`--now`), so the
// live directory never holds a key without its certificate for long. The
// deploy and reload steps then install, verify, and remove the old record.
// Committing again is allowed and only repeats the hand-over.
func Commit(ctx context.Context, e *deploy.Engine, lineage string, swapNow bool) (*Status, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, err
	}
	lk, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	return commit(ctx, e, l, swapNow)
}

// commit is Commit for a caller that holds the lock.
func commit(ctx context.Context, e *deploy.Engine, l *config.Lineage, swapNow bool) (*Status, error) {
	st, err := e.LineageState(l.Name)
	if err != nil {
		return nil, err
	}
	if st.Next == nil {
		return nil, fmt.Errorf("lineage %q: %w: run 'danectl rotate stage %s' first", l.Name, ErrNoStagedKey, l.Name)
	}
	rs, err := status(ctx, e, l, st)
	if err != nil {
		return nil, err
	}
	if !rs.Aged && st.Next.Committed.IsZero() {
		when := "unknown until every server serves it"
		if !rs.AgedAt.IsZero() {
			when = rs.AgedAt.UTC().Format(time.RFC3339)
		}
		return rs, fmt.Errorf("lineage %q: %w (safe at %s): %s", l.Name, ErrNotAged, when, strings.Join(rs.Blocking, "; "))
	}
	if st.Next.Committed.IsZero() {
		st.Next.Committed = e.Time()
		if err := e.SaveLineageState(l.Name, st); err != nil {
			return rs, err
		}
	}
	crashpoint("commit:recorded")
	if swapNow || l.CertbotLineage == "" {
		if err := swapKey(e, l, st); err != nil {
			return rs, err
		}
	}
	return rs, nil
}
