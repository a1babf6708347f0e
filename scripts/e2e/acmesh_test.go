package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// acme.sh is not packaged in Debian and cannot be installed here, so the
// acme.sh world runs a stand-in for it: lego v5 does the ACME part against
// Pebble, and a shell script does what acme.sh v3.1.4 does around it, in
// its order and with its code where it touches danehook
// (github.com/acmesh-official/acme.sh, commit d60c75b4, file acme.sh):
//
//  1. renew() sources the domain configuration <domain>.conf, so
//     Le_ForceNewDomainKey is read before anything else runs;
//  2. _on_before_issue runs the --pre-hook: `( export Le_Domain; export
//     Le_Alt; cd "$DOMAIN_PATH" && eval "$_chk_pre_hook" )`;
//  3. issue() makes a new domain key when Le_ForceNewDomainKey is "1"
//     (lego without --reuse-key), else keeps <domain>.key;
//  4. the files land in DOMAIN_PATH: <domain>.key, <domain>.cer (leaf),
//     ca.cer (issuers), fullchain.cer; issue() then saves
//     Le_ForceNewDomainKey='1' back into the configuration, or clears it;
//  5. _installcert runs --reloadcmd: `( export CERT_PATH; export
//     CERT_KEY_PATH; export CA_CERT_PATH; export CERT_FULLCHAIN_PATH;
//     export Le_Domain="$_main_domain"; export Le_ForceNewDomainKey; export
//     Le_Next_Domain_Key; cd "$DOMAIN_PATH" && eval "$_reload_cmd" )`,
//     and a failing reload command is only reported ("Reload error for:"),
//     acme.sh still exits 0.
//
// This tests danehook against acme.sh's contract, not acme.sh itself
// (README, "acme.sh").
const acmeShStandIn = `#!/bin/sh
# acme.sh stand-in (scripts/e2e/acmesh_test.go): lego does the ACME part.
lego=%[1]q; LEGO_PATH=%[2]q; DOMAIN_PATH=%[3]q; _main_domain=%[4]q
_pre_hook=%[5]q; _reload_cmd=%[6]q
DOMAIN_CONF="$DOMAIN_PATH/$_main_domain.conf"
mkdir -p "$DOMAIN_PATH"
[ -f "$DOMAIN_CONF" ] || printf "Le_Domain='%%s'\nLe_Alt='no'\nLe_Keylength='ec-256'\n" "$_main_domain" > "$DOMAIN_CONF"
# 1. renew(): . "$DOMAIN_CONF"
. "$DOMAIN_CONF"
# 2. _on_before_issue
if [ "$_pre_hook" ]; then
  if ! (
    export Le_Domain="$_main_domain"
    export Le_Alt="no"
    cd "$DOMAIN_PATH" && eval "$_pre_hook"
  ); then
    echo "Error occurred when running pre hook." >&2; exit 1
  fi
fi
# 3. issue(): a new key only with Le_ForceNewDomainKey = 1
if [ "$Le_ForceNewDomainKey" = "1" ]; then "$lego" "$@" || exit 1; else "$lego" "$@" --reuse-key || exit 1; fi
# 4. the files (_initpath names), then Le_ForceNewDomainKey saved or cleared
certs="$LEGO_PATH/certificates"
CERT_KEY_PATH="$DOMAIN_PATH/$_main_domain.key"
CERT_PATH="$DOMAIN_PATH/$_main_domain.cer"
CA_CERT_PATH="$DOMAIN_PATH/ca.cer"
CERT_FULLCHAIN_PATH="$DOMAIN_PATH/fullchain.cer"
Le_Next_Domain_Key="$CERT_KEY_PATH.next"
cat "$certs/$_main_domain.key" > "$CERT_KEY_PATH"
awk '{print} /-----END CERTIFICATE-----/{exit}' "$certs/$_main_domain.crt" > "$CERT_PATH"
cat "$certs/$_main_domain.issuer.crt" > "$CA_CERT_PATH"
cat "$certs/$_main_domain.crt" > "$CERT_FULLCHAIN_PATH"
_conf_data="$(cat "$DOMAIN_CONF")"
echo "$_conf_data" | sed "/^Le_ForceNewDomainKey *=.*$/d" > "$DOMAIN_CONF"
if [ "$Le_ForceNewDomainKey" = "1" ]; then echo "Le_ForceNewDomainKey='1'" >> "$DOMAIN_CONF"; fi
# 5. _installcert: the reload command
if [ "$_reload_cmd" ]; then
  echo "Running reload cmd: $_reload_cmd"
  if (
    export CERT_PATH
    export CERT_KEY_PATH
    export CA_CERT_PATH
    export CERT_FULLCHAIN_PATH
    export Le_Domain="$_main_domain"
    export Le_ForceNewDomainKey
    export Le_Next_Domain_Key
    cd "$DOMAIN_PATH" && eval "$_reload_cmd"
  ); then
    echo "Reload successful"
  else
    echo "Reload error for: $_main_domain" >&2
  fi
fi
exit 0
`

// acmeShDir is the world's acme.sh domain directory (DOMAIN_PATH).
func (w *world) acmeShDir() string { return filepath.Join(w.dir, ".acme.sh", host+"_ecc") }

// acmeShConf is its domain configuration.
func (w *world) acmeShConf() string { return filepath.Join(w.acmeShDir(), host+".conf") }

// setupAcmeSh writes the stand-in with the hooks the README gives for
// acme.sh (--pre-hook dane-prerenew, --reloadcmd "dane-deploy --reload")
// and makes it the world's client.
func (w *world) setupAcmeSh() {
	w.t.Helper()
	p := filepath.Join(w.dir, "acme.sh")
	script := fmt.Sprintf(acmeShStandIn, w.tool, w.legoPath(), w.acmeShDir(), host, "dane-prerenew", "dane-deploy --reload")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		w.t.Fatal(err)
	}
	w.tool = p
}

// setForceNewKey writes Le_ForceNewDomainKey='1' into the domain
// configuration, as `acme.sh --renew --always-force-new-domain-key` stores it.
func (w *world) setForceNewKey() {
	w.t.Helper()
	f, err := os.OpenFile(w.acmeShConf(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("Le_ForceNewDomainKey='1'\n"); err != nil {
		w.t.Fatal(err)
	}
}

// acmeShForceNewKey: the pitfall. With Le_ForceNewDomainKey='1' in the
// domain configuration, `dane-prerenew --check` exits 1 naming the file.
// The renewal still makes a new key (acme.sh read the file before its pre
// hook repaired it) and writes the setting back; dane-deploy, the reload
// command, removes it again, publishes the new key's record and leaves the
// switch pending, which tick completes once the record is aged. The next
// renewal keeps the key.
func (w *world) acmeShForceNewKey() {
	t := w.t
	w.setForceNewKey()
	chk := w.exec(nil, bin("dane-prerenew"), "--check")
	if chk.code != 1 || !strings.Contains(chk.out, w.acmeShConf()) || !strings.Contains(chk.out, "Le_ForceNewDomainKey") {
		t.Fatalf("dane-prerenew --check with Le_ForceNewDomainKey='1': want exit 1 naming %s; got %v", w.acmeShConf(), chk)
	}
	old := w.served()
	r := w.client(w.renewArgs(false)...)
	fresh := w.current()
	if fresh.Digest == old.Digest {
		t.Fatalf("acme.sh with Le_ForceNewDomainKey='1' kept key %s; the stand-in must make a new key as acme.sh does", short(old.Digest))
	}
	if b, _ := os.ReadFile(w.acmeShConf()); strings.Contains(string(b), "Le_ForceNewDomainKey") {
		t.Fatalf("%s after the renewal still has Le_ForceNewDomainKey (dane-deploy must remove it after acme.sh wrote it back):\n%s\nclient output:\n%s", w.acmeShConf(), b, r.out)
	}
	if got := w.served(); got.Digest != old.Digest {
		t.Fatalf("Postfix switched to the new key %s at once; want a pending switch", short(got.Digest))
	}
	w.waitRecords(old.Record, fresh.Record)
	w.tickUntilServed(fresh, w.switchWait())
	w.waitRecords(fresh.Record)
	w.verifyLive()

	w.client(w.renewArgs(false)...)
	if again := w.current(); again.Digest != fresh.Digest {
		t.Fatalf("the renewal after the repair made key %s; want %s kept", short(again.Digest), short(fresh.Digest))
	}
	w.waitServed(w.current())
	w.verifyLive()
}
