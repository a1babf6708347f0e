package pkgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/acmelab"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/internal/testenv"
)

// certbotWorld is a real certbot against Pebble with the installed
// package's hooks, kept across the steps install → remove → purge: issue
// 13 "After apt remove or apt purge, every certbot renewal fails three
// hooks with exit 127" must not happen.
type certbotWorld struct {
	acme       *acmelab.Lab
	dir        string // certbot's --config-dir
	cfg        string // danehook configuration
	env        []string
	renewalCfg string // renewal/web.conf
}

// startCertbot starts BIND and Pebble for the whole test (t is TestPackage's).
func startCertbot(t *testing.T) *certbotWorld {
	testenv.Require(t, "certbot")
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	w := &certbotWorld{acme: acmelab.Start(t, acmelab.Options{DNSServer: lab.Primary, AlwaysValid: true}), dir: filepath.Join(t.TempDir(), "letsencrypt")}
	// The danehook lineage is not issued yet; the certificate certbot
	// renews is a web server's (lineage web), which danehook does not
	// manage: the hooks must succeed for it. The state is the package's
	// /var/lib/danehook, where 'init certbot' records the certbot directory.
	live := filepath.Join(w.dir, "live", "mail")
	path, text := fixture.LabConfig(t, lab, `certbot_lineage = "`+live+`"`+"\n")
	i := strings.Index(text, "state_dir = ")
	j := i + strings.Index(text[i:], "\n")
	text = text[:i] + `state_dir = "` + stateDir + `"` + text[j:]
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg = path
	w.env = append(w.acme.Env(), "DANEHOOK_CONFIG="+path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	w.renewalCfg = filepath.Join(w.dir, "renewal", "web.conf")
	return w
}

// issue links the hooks (danectl init certbot) and issues the web
// certificate the way the README used to say: the directory hooks also
// given as flags, so certbot stores them in renewal/web.conf, the worst case
// for a removal. Then one renewal runs every hook.
func (w *certbotWorld) issue(t *testing.T) {
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "", nil, binDir+"/danectl", "init", "certbot", "--certbot-dir", w.dir, "--config", w.cfg)
	t.Logf("danectl init certbot:\n%s", out)
	if b, err := os.ReadFile(stateDir + "/certbot-dirs"); err != nil || !strings.Contains(string(b), w.dir) {
		t.Fatalf("init certbot did not record %s in %s/certbot-dirs: %q %v", w.dir, stateDir, b, err)
	}
	args := append([]string{"certonly"}, w.acme.CertbotArgs(w.dir)...)
	args = append(args, "--cert-name", "web", "-d", "mail.example.test", "--key-type", "ecdsa")
	for _, p := range []string{"pre", "deploy", "post"} {
		args = append(args, "--"+p+"-hook", filepath.Join(w.dir, "renewal-hooks", p, "danehook"))
	}
	out = mustRun(t, "", w.env, "certbot", args...)
	checkHooksOK(t, "certbot certonly", out)
	if conf := readFile(t, w.renewalCfg); !strings.Contains(conf, "renew_hook = ") {
		t.Fatalf("certbot stored no renew_hook in %s:\n%s", w.renewalCfg, conf)
	}
	out = w.renew(t, "with danehook installed")
	if !strings.Contains(out, "not a lineage danehook manages") {
		t.Errorf("certbot renew: the deploy hook did not report lineage web as not managed:\n%s", out)
	}
}

// renew runs `certbot renew --force-renewal` and requires exit 0 and no
// hook error.
func (w *certbotWorld) renew(t *testing.T, when string) string {
	t.Helper()
	args := append([]string{"renew"}, w.acme.CertbotArgs(w.dir)...)
	out, err := run("", w.env, "certbot", append(args, "--force-renewal")...)
	if err != nil {
		t.Fatalf("certbot renew %s: %v\n%s", when, err, out)
	}
	checkHooksOK(t, "certbot renew "+when, out)
	t.Logf("certbot renew %s: exit 0", when)
	return out
}

// checkHooksOK fails t when certbot reported a failed hook (certbot logs
// "Hook 'deploy-hook' reported error code N") or a hook wrote to stderr
// (certbot logs that as a WARNING: "Error output from …").
func checkHooksOK(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"reported error code", "Error output from", "command not found", "not found"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: certbot says %q:\n%s", what, bad, out)
		}
	}
}

// afterRemoval checks that removal took danehook's hooks out of
// renewal/web.conf and that a renewal still succeeds.
func (w *certbotWorld) afterRemoval(t *testing.T, how string) {
	t.Helper()
	conf := readFile(t, w.renewalCfg)
	for _, k := range []string{"pre_hook", "renew_hook", "post_hook"} {
		if strings.Contains(conf, k+" = ") {
			t.Errorf("after %s, %s still has %s:\n%s", how, w.renewalCfg, k, conf)
		}
	}
	w.renew(t, "after "+how)
}
