package rotate

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Errors of the rotation steps; callers branch on them for exit codes.
var (
	// ErrNotAged: the staged key's records are not aged yet, so committing
	// could make Postfix serve a key senders cannot match.
	ErrNotAged = errors.New("staged key's records are not aged")
	// ErrNoStagedKey: the lineage has no staged key.
	ErrNoStagedKey = errors.New("no staged key")
	// ErrCommitted: the rotation is committed and can no longer be aborted.
	ErrCommitted = errors.New("rotation already committed")
)

// nextKeyPath is where the staged key of lineage is kept.
func nextKeyPath(e *deploy.Engine, lineage string) string {
	return filepath.Join(e.Store.Dir, lineage+".next.key")
}

// Stage is `danectl rotate stage`: it makes the lineage's next key (mode
// 0600, in the state directory), records it, and publishes its 3 1 1
// record beside the current key's at every owner of the lineage. A key
// already staged is kept, never overwritten: running Stage again only
// publishes what is missing (after a crash, for example). It returns the
// staged key and the DNS plans sent; errors name the lineage, the key file
// or the provider at fault.
func Stage(ctx context.Context, e *deploy.Engine, lineage string, spec KeySpec) (*deploy.NextKey, []*deploy.OwnerPlan, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, nil, err
	}
	lk, err := e.Lock()
	if err != nil {
		return nil, nil, err
	}
	defer lk.Unlock()
	return stage(ctx, e, l, spec)
}

// stage is Stage for a caller that holds the lock.
func stage(ctx context.Context, e *deploy.Engine, l *config.Lineage, spec KeySpec) (*deploy.NextKey, []*deploy.OwnerPlan, error) {
	st, err := e.LineageState(l.Name)
	if err != nil {
		return nil, nil, err
	}
	if st.Next == nil {
		if st.Next, err = makeNextKey(e, l, spec); err != nil {
			return nil, nil, err
		}
		if err := e.SaveLineageState(l.Name, st); err != nil {
			return nil, nil, err
		}
	}
	crashpoint("stage:recorded")
	plans, err := e.PublishLineage(ctx, l.Name)
	return st.Next, plans, err
}

// makeNextKey writes a new key for l (or adopts one a crashed Stage wrote
// before recording it) and returns its record.
func makeNextKey(e *deploy.Engine, l *config.Lineage, spec KeySpec) (*deploy.NextKey, error) {
	path := nextKeyPath(e, l.Name)
	k, err := chain.ReadKey(path)
	alg := ""
	switch {
	case err == nil:
		// Written by a Stage that crashed before recording it: adopt it.
		alg = "adopted"
	case errors.Is(err, fs.ErrNotExist):
		var cur crypto.PublicKey
		if served, err := chain.Load(l.ChainFile); err == nil {
			cur = served.Leaf.PublicKey
		}
		if k, alg, err = spec.Generate(cur); err != nil {
			return nil, fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		data, err := chain.EncodeKey(k)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			return nil, err
		}
		crashpoint("stage:key-written")
	default:
		return nil, fmt.Errorf("lineage %q: staged key: %w (move it aside to stage a new one)", l.Name, err)
	}
	spki, err := tlsa.KeyDigestHex(k)
	if err != nil {
		return nil, fmt.Errorf("lineage %q: staged key %s: %w", l.Name, path, err)
	}
	return &deploy.NextKey{File: path, SPKI: spki, Algorithm: alg, Staged: e.Time()}, nil
}

// Abort is `danectl rotate abort`: it withdraws a staged key that is not
// committed (ErrNoStagedKey without one, ErrCommitted once committed),
// deleting its file and removing its records — like any other record, once
// no chain Postfix may serve relies on them (deploy.Engine.Withdraw). It
// returns the DNS plans sent.
func Abort(ctx context.Context, e *deploy.Engine, lineage string) ([]*deploy.OwnerPlan, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, err
	}
	lk, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	st, err := e.LineageState(l.Name)
	if err != nil {
		return nil, err
	}
	if st.Next == nil {
		return nil, fmt.Errorf("lineage %q: %w", l.Name, ErrNoStagedKey)
	}
	if !st.Next.Committed.IsZero() {
		return nil, fmt.Errorf("lineage %q: %w at %s: the next renewal uses the staged key; let it complete", l.Name, ErrCommitted, st.Next.Committed.UTC().Format(time.RFC3339))
	}
	file := st.Next.File
	withdrawn, _ := st.Next.Record()
	st.Next = nil
	if err := e.SaveLineageState(l.Name, st); err != nil {
		return nil, err
	}
	os.Remove(file)
	return e.Withdraw(ctx, withdrawn)
}
