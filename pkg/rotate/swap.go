package rotate

import (
	"fmt"

	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/lego"
)

// swapKeys puts the committed staged keys of ls in place for the renewal
// about to run (dane-prerenew). Callers hold the lock.
func swapKeys(e *deploy.Engine, ls []*config.Lineage) error {
	for _, l := range ls {
		st, err := e.LineageState(l.Name)
		if err != nil {
			return err
		}
		if st.Next != nil && !st.Next.Committed.IsZero() && !st.Next.Swapped {
			if err := swapKey(e, l, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// swapKey hands l's staged key to its ACME client — certbot.SwapKey for a
// certbot lineage; lego.InstallKey, and lego.EnsureCSR when lego_csr is set
// (lego --csr reads the CSR before its pre hook too, so it must be made
// from the staged key now, or the renewal certifies the old key) — and
// records Swapped in st. Idempotent: a key file that already holds the
// staged key is left alone. Callers hold the lock.
func swapKey(e *deploy.Engine, l *config.Lineage, st *deploy.LineageState) error {
	key, err := chain.ReadKey(st.Next.File)
	if err != nil {
		return fmt.Errorf("lineage %q: staged key: %w", l.Name, err)
	}
	switch {
	case l.CertbotLineage != "":
		if _, err := certbot.SwapKey(l.CertbotLineage, key); err != nil {
			return fmt.Errorf("lineage %q: %w", l.Name, err)
		}
	case l.LegoKey != "":
		if _, err := lego.InstallKey(l.LegoKey, key); err != nil {
			return fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		if l.LegoCSR != "" {
			if _, err := lego.EnsureCSR(l.LegoKey, l.LegoCSR, l.Hosts); err != nil {
				return fmt.Errorf("lineage %q: %w", l.Name, err)
			}
		}
	default:
		return fmt.Errorf("lineage %q: neither certbot_lineage nor lego_key is set, so danehook cannot hand the staged key %s to the ACME client (rotation supports certbot and lego; for dehydrated or acme.sh lineages install the key by hand and renew)", l.Name, st.Next.File)
	}
	crashpoint("commit:swapped")
	st.Next.Swapped = true
	return e.SaveLineageState(l.Name, st)
}
