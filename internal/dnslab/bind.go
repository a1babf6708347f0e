package dnslab

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
)

// StartBIND starts a BIND primary and secondary with internal/bindlab and
// describes them as a *Lab, so a suite written against Lab runs on BIND too.
// ExtraKey rights become update-policy grants: Zone is `grant "<key>"
// zonesub ANY;`, each of Owners `grant "<key>" name <owner> TLSA;`.
func StartBIND(t testing.TB, opts Options) *Lab {
	t.Helper()
	opts = Normalize(opts)
	bo := bindlab.Options{Zones: opts.Zones, TTL: opts.TTL, Signed: opts.Signed}
	for _, ek := range opts.ExtraKeys {
		k := bindlab.ExtraKey{Name: ek.Name, Algorithm: ek.Algorithm}
		if ek.Zone {
			k.Grants = append(k.Grants, fmt.Sprintf("grant %q zonesub ANY;", ek.Name))
		}
		for _, o := range ek.Owners {
			k.Grants = append(k.Grants, fmt.Sprintf("grant %q name %s TLSA;", ek.Name, o))
		}
		bo.ExtraKeys = append(bo.ExtraKeys, k)
	}
	b := bindlab.Start(t, bo)
	l := &Lab{
		Product: "BIND", SecondaryProduct: "BIND", Version: bindVersion(),
		Dir: b.Dir, Port: b.Port, Primary: b.Primary, Secondary: b.Secondary,
		Zones: b.Zones, TTL: b.TTL, Signed: opts.Signed,
		Key:         Key{Name: b.KeyName, Algorithm: b.KeyAlgorithm, Secret: b.KeySecret(), File: b.KeyFile},
		Keys:        map[string]Key{},
		OwnerGrants: true,
	}
	for name, k := range b.Keys {
		l.Keys[name] = Key{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret(), File: k.File}
	}
	return l
}

func bindVersion() string {
	out, err := exec.Command("named", "-v").Output()
	if err != nil {
		return ""
	}
	// "BIND 9.18.49-1~deb12u3-Debian (Extended Support Version) <id:…>"
	if f := strings.Fields(string(out)); len(f) > 1 {
		return f[1]
	}
	return ""
}
