package rotate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
)

// Policy applies rotate_every (`danectl tick`, after the reload step), under
// the lock: a lineage whose served key is older than its rotate_every gets
// a staged key; a staged key whose records are aged is committed, so the
// next scheduled renewal uses it. Lineages without rotate_every are left
// alone. It returns one line per action, for the log; an error stops at
// the lineage that failed, keeping the lines of those done before.
func Policy(ctx context.Context, e *deploy.Engine) ([]string, error) {
	lk, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	var done []string
	for _, name := range e.Config.LineageNames() {
		l := e.Config.Lineages[name]
		if l.RotateEvery <= 0 {
			continue
		}
		st, err := e.LineageState(name)
		if err != nil {
			return done, err
		}
		switch {
		case st.Next == nil && !st.KeySince.IsZero() && e.Time().Sub(st.KeySince) >= time.Duration(l.RotateEvery):
			n, _, err := stage(ctx, e, l, KeySpec{})
			if err != nil {
				return done, err
			}
			done = append(done, fmt.Sprintf("lineage %s: key older than rotate_every %s: staged 3 1 1 %s", name, l.RotateEvery, n.SPKI))
		case st.Next != nil && st.Next.Committed.IsZero():
			if _, err := commit(ctx, e, l, false); err != nil {
				if errors.Is(err, ErrNotAged) {
					continue
				}
				return done, err
			}
			done = append(done, fmt.Sprintf("lineage %s: staged key aged: committed; the next renewal uses it", name))
		}
	}
	return done, nil
}
