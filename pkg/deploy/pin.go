package deploy

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
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

// Pin is dane-prerenew's step (DESIGN §5): for every lineage (or the named
// ones) make the next renewal reuse the current key — certbot: reuse_key =
// True in renewal/<name>.conf; lego with lego_csr: the pinned CSR made from
// lego_key — and record the current key's SPKI in the state. With check
// set it only reports. Errors name the file at fault.
func (e *Engine) Pin(check bool, names ...string) ([]PinResult, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	if !check {
		// A committed rotation: the renewal about to run uses the staged key.
		if err := e.swapKeys(ls); err != nil {
			return nil, err
		}
	}
	var out []PinResult
	for _, l := range ls {
		r, err := e.pin(l, check)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		src, err := e.loadSource(l, nil)
		if err != nil || src == nil {
			continue
		}
		st, err := e.loadLineage(l.Name)
		if err != nil {
			return out, err
		}
		if spki := spkiHex(src); spki != st.KeySPKI && !check {
			st.KeySPKI = spki
			if err := e.Store.Save(l.Name, st); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func (e *Engine) pin(l *config.Lineage, check bool) (PinResult, error) {
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
		return e.pinCSR(l, check, r)
	default:
		r.OK, r.Message = true, "lego: run with --reuse-key (danehook detects a changed key by SPKI either way)"
	}
	return r, nil
}

// pinCSR keeps l's pinned CSR made from l's key: a CSR whose public key is
// not the key's is regenerated (or reported with check).
func (e *Engine) pinCSR(l *config.Lineage, check bool, r PinResult) (PinResult, error) {
	kb, err := chain.ReadFile(l.LegoKey)
	if err != nil {
		return r, err
	}
	if len(kb.PrivateKeys) != 1 {
		return r, fmt.Errorf("lineage %q: lego_key %s: want exactly one private key, found %d", l.Name, l.LegoKey, len(kb.PrivateKeys))
	}
	key := kb.PrivateKeys[0]
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return r, err
	}
	if cb, err := chain.ReadFile(l.LegoCSR); err == nil && len(kb.PrivateKeys) == 1 && len(cb.CSRs) == 1 {
		if have, err := x509.MarshalPKIXPublicKey(cb.CSRs[0].PublicKey); err == nil && bytes.Equal(have, spki) {
			r.OK, r.Message = true, "pinned CSR matches lego_key"
			return r, nil
		}
	}
	if check {
		r.Message = "pinned CSR is missing or not made from lego_key; run dane-prerenew without --check to regenerate it"
		return r, nil
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: l.Hosts[0]}, DNSNames: l.Hosts}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return r, fmt.Errorf("lineage %q: make CSR from %s: %w", l.Name, l.LegoKey, err)
	}
	if err := atomicfile.Write(l.LegoCSR, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		return r, err
	}
	r.OK, r.Changed, r.Message = true, true, "regenerated the pinned CSR from lego_key"
	return r, nil
}
