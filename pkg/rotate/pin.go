package rotate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/lego"
	"github.com/danehook/danehook/pkg/tlsa"
)

// PinResult reports the key pinning of one lineage (dane-prerenew).
type PinResult struct {
	Lineage string
	// File is the certbot renewal configuration or the lego CSR checked.
	File string
	// OK is true when renewals will reuse the current key.
	OK bool
	// Changed is true when the file was repaired.
	Changed bool
	// Message says what was found or done, for the log.
	Message string
}

// Pin is dane-prerenew's step (DESIGN §5), under the lock, for every
// lineage (or the named ones): first hand a committed staged key to the
// ACME client (the renewal about to run certifies it), then make the next
// renewal reuse the client's key — certbot: reuse_key = True in
// renewal/<name>.conf (certbot.EnsureReuseKey); lego with lego_csr: the
// pinned CSR made from lego_key for the lineage's hosts (lego.EnsureCSR) —
// and record the key's digest in the lineage's state (KeySPKI). With check
// set nothing changes: it only reports. Errors name the file at fault.
//
// Pin lives here, not in pkg/deploy, because its first half is a rotation
// step; what each client needs is known by pkg/certbot and pkg/lego.
func Pin(e *deploy.Engine, check bool, names ...string) ([]PinResult, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	lk, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	if !check {
		if err := swapKeys(e, ls); err != nil {
			return nil, err
		}
	}
	var out []PinResult
	for _, l := range ls {
		r, err := pin(l, check)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if check {
			continue
		}
		if err := recordKey(e, l); err != nil {
			return out, err
		}
	}
	return out, nil
}

// pin checks, and unless check repairs, that l's next renewal reuses its key.
func pin(l *config.Lineage, check bool) (PinResult, error) {
	r := PinResult{Lineage: l.Name}
	switch {
	case l.CertbotLineage != "":
		r.File = certbot.RenewalConf(l.CertbotLineage)
		if _, err := os.Stat(r.File); errors.Is(err, fs.ErrNotExist) {
			r.OK, r.Message = true, "no certbot renewal configuration yet (first issuance pending); pass --reuse-key to certbot certonly"
			return r, nil
		}
		ok, err := certbot.ReuseKey(r.File)
		if err != nil {
			return r, err
		}
		switch {
		case ok:
			r.OK, r.Message = true, "reuse_key = True"
		case check:
			r.Message = "reuse_key is not True: the next renewal would make a new key and break its 3 1 1 records; run dane-prerenew without --check to repair"
		default:
			if r.Changed, err = certbot.EnsureReuseKey(r.File); err != nil {
				return r, err
			}
			r.OK, r.Message = true, "set reuse_key = True (renewals would otherwise make a new key)"
		}
	case l.LegoCSR != "":
		r.File = l.LegoCSR
		ok, err := lego.CheckCSR(l.LegoKey, l.LegoCSR, l.Hosts)
		if err != nil {
			return r, fmt.Errorf("lineage %q: lego_key: %w", l.Name, err)
		}
		switch {
		case ok:
			r.OK, r.Message = true, "pinned CSR matches lego_key"
		case check:
			r.Message = "pinned CSR is missing or not made from lego_key for every host; run dane-prerenew without --check to regenerate it"
		default:
			if r.Changed, err = lego.EnsureCSR(l.LegoKey, l.LegoCSR, l.Hosts); err != nil {
				return r, fmt.Errorf("lineage %q: %w", l.Name, err)
			}
			r.OK, r.Message = true, "regenerated the pinned CSR from lego_key"
		}
	case l.DehydratedCert != "":
		return pinDehydrated(l, check)
	case l.AcmeShDir != "":
		return pinAcmeSh(l, check)
	default:
		r.OK, r.Message = true, "lego: run with --reuse-key (danehook detects a changed key by SPKI either way)"
	}
	return r, nil
}

// pinDehydrated checks, and unless check repairs, that dehydrated reuses
// the key: PRIVATE_KEY_RENEW="no" in effect for the certificate
// (dehydrated.Read sources the configuration as dehydrated does).
func pinDehydrated(l *config.Lineage, check bool) (PinResult, error) {
	r := PinResult{Lineage: l.Name}
	ctx := context.Background()
	main := dehydrated.MainConfig(l.DehydratedConfig)
	s, err := dehydrated.Read(ctx, main, l.DehydratedCert)
	if err != nil {
		return r, fmt.Errorf("lineage %q: %w", l.Name, err)
	}
	r.File = s.CertConfig
	switch {
	case s.Pinned():
		r.OK, r.Message = true, `PRIVATE_KEY_RENEW="no"`
	case check:
		r.Message = fmt.Sprintf("PRIVATE_KEY_RENEW is %q (dehydrated's default is \"yes\"): the next renewal would make a new key and break its 3 1 1 records; run dane-prerenew without --check to set PRIVATE_KEY_RENEW=\"no\" in %s", s.KeyRenew, s.CertConfig)
	default:
		if _, r.Changed, err = dehydrated.EnsureKeyKept(ctx, main, l.DehydratedCert); err != nil {
			return r, fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		r.OK, r.Message = true, fmt.Sprintf(`set PRIVATE_KEY_RENEW="no" in the per-certificate configuration (it was %q: renewals would otherwise make a new key)`, s.KeyRenew)
	}
	return r, nil
}

// pinAcmeSh checks, and unless check repairs, that acme.sh reuses the key:
// no Le_ForceNewDomainKey='1' (--always-force-new-domain-key) in the domain
// configuration. acme.sh reads that file before its pre hook, so a repair
// made now holds from the next renewal on; dane-deploy repeats it after
// each renewal, when acme.sh has written the setting back.
func pinAcmeSh(l *config.Lineage, check bool) (PinResult, error) {
	a := acmesh.LayoutOf(l.AcmeShDir)
	r := PinResult{Lineage: l.Name, File: a.Conf}
	if _, err := os.Stat(a.Conf); errors.Is(err, fs.ErrNotExist) {
		r.OK, r.Message = true, "no acme.sh domain configuration yet (first issuance pending); issue without --always-force-new-domain-key"
		return r, nil
	}
	force, err := acmesh.ForcesNewKey(a.Conf)
	if err != nil {
		return r, fmt.Errorf("lineage %q: %w", l.Name, err)
	}
	switch {
	case !force:
		r.OK, r.Message = true, "acme.sh keeps the domain key (no Le_ForceNewDomainKey)"
	case check:
		r.Message = "Le_ForceNewDomainKey='1' (--always-force-new-domain-key): every renewal makes a new key and breaks its 3 1 1 records; run dane-prerenew without --check to remove it"
	default:
		if r.Changed, err = acmesh.EnsureKeyKept(a.Conf); err != nil {
			return r, fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		r.OK, r.Message = true, "removed Le_ForceNewDomainKey (--always-force-new-domain-key) from the domain configuration: acme.sh read it before this hook, so a renewal running now may still make a new key (danehook then publishes and waits); later renewals keep the key"
	}
	return r, nil
}

// recordKey notes in l's state the digest of the key the ACME client's
// next renewal reuses; a lineage whose key file cannot be read yet (first
// issuance pending) is left alone.
func recordKey(e *deploy.Engine, l *config.Lineage) error {
	var file string
	switch {
	case l.CertbotLineage != "":
		file = filepath.Join(l.CertbotLineage, certbot.LiveKey)
	case l.LegoKey != "":
		file = l.LegoKey
	case l.DehydratedCert != "":
		file = filepath.Join(l.DehydratedCert, dehydrated.KeyFile)
	case l.AcmeShDir != "":
		file = acmesh.LayoutOf(l.AcmeShDir).Key
	default:
		return nil
	}
	key, err := chain.ReadKey(file)
	if err != nil {
		return nil
	}
	d, err := tlsa.KeyDigestHex(key)
	if err != nil {
		return nil
	}
	st, err := e.LineageState(l.Name)
	if err != nil || st.KeySPKI == d {
		return err
	}
	st.KeySPKI = d
	return e.SaveLineageState(l.Name, st)
}
