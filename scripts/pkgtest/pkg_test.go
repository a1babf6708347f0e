package pkgtest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
)

// What the package installs, as the operator sees it.
const (
	binDir     = "/usr/bin"
	confDir    = "/etc/danehook"
	confFile   = "/etc/danehook/danehook.toml"
	stateDir   = "/var/lib/danehook"
	unitDir    = "/lib/systemd/system" // Debian's; the .rpm uses /usr/lib/systemd/system
	hooksDir   = "/usr/share/danehook/hooks"
	timerWants = "/etc/systemd/system/timers.target.wants/danehook.timer"
)

var binaries = []string{"danectl", "dane-prerenew", "dane-deploy", "dane-reload"}

// Versions of the two packages built: the second upgrades the first.
const (
	version1 = "0.0.1"
	version2 = "0.0.2"
)

func TestPackage(t *testing.T) {
	testenv.Require(t, "dpkg", "dpkg-deb", "dpkg-query", "go", "git", "gzip")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root: the package test installs a .deb into /usr, /etc and /var")
	}
	refuseExisting(t)

	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	arch := strings.TrimSpace(mustRun(t, root, nil, "go", "env", "GOARCH"))
	dist := t.TempDir()
	deb1, rpm1 := build(t, root, dist, arch, version1, "deb rpm")
	deb2, _ := build(t, root, dist, arch, version2, "deb")

	t.Cleanup(func() {
		// Leave the machine as it was, whatever failed.
		if installed() {
			if out, err := run("", nil, "dpkg", "--purge", "danehook"); err != nil {
				t.Errorf("cleanup: dpkg --purge danehook: %v\n%s", err, out)
			}
		}
		os.Remove(timerWants)
	})

	t.Run("lintian", func(t *testing.T) { lintian(t, deb1) })
	t.Run("rpm", func(t *testing.T) { checkRPM(t, rpm1, arch) })

	cb := startCertbot(t)
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"install", func(t *testing.T) { install(t, deb1) }},
		{"files", checkFiles},
		{"config-check", configCheck},
		{"init-certbot", initCertbot},
		{"certbot-issue", cb.issue},
		{"e2e-installed", func(t *testing.T) { e2eInstalled(t, root) }},
		{"upgrade", func(t *testing.T) { upgrade(t, deb2) }},
		{"remove", remove},
		{"certbot-after-remove", func(t *testing.T) { cb.afterRemoval(t, "dpkg --remove") }},
		{"purge", purge},
		{"certbot-after-purge", func(t *testing.T) { cb.afterRemoval(t, "dpkg --purge") }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return // later steps build on this one
		}
	}
}

// refuseExisting stops the test where an operator's danehook could be
// damaged: an installed package, a configuration or state directory.
func refuseExisting(t *testing.T) {
	t.Helper()
	var found []string
	if installed() {
		found = append(found, "package danehook")
	}
	for _, p := range []string{confDir, stateDir} {
		if _, err := os.Lstat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return
	}
	msg := "the package test would install over and then purge an existing danehook: " + strings.Join(found, ", ") +
		"; run it on a machine without danehook (or purge it first)"
	if testenv.CI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// build runs scripts/package.sh for arch and returns the .deb and (when
// formats include rpm) .rpm it wrote into dist.
func build(t *testing.T, root, dist, arch, version, formats string) (deb, rpm string) {
	t.Helper()
	out := mustRun(t, root, []string{"ARCHES=" + arch, "FORMATS=" + formats, "VERSION=" + version, "DANEHOOK_DIST=" + dist},
		filepath.Join(root, "scripts", "package.sh"))
	t.Logf("scripts/package.sh (%s, %s):\n%s", version, formats, lastLines(out, 4))
	deb = filepath.Join(dist, fmt.Sprintf("danehook_%s-1_%s.deb", version, arch))
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
	rpm = filepath.Join(dist, fmt.Sprintf("danehook-%s-1.%s.rpm", version, rpmArch))
	for _, f := range []string{deb, rpm} {
		if f == rpm && !strings.Contains(formats, "rpm") {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("scripts/package.sh did not write %s: %v\n%s", f, err, out)
		}
	}
	return deb, rpm
}

// knownLintian are the lintian tags left on purpose (see
// packaging/README-packaging.md); every other error or warning fails.
var knownLintian = map[string]string{
	"no-copyright-file": "the project has not chosen a license yet",
}

func lintian(t *testing.T, deb string) {
	testenv.Require(t, "lintian")
	out, _ := run("", nil, "lintian", "--pedantic", "--display-info", deb) // exit 2 on any error tag
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || len(f[0]) != 2 || f[0][1] != ':' {
			continue
		}
		tag := f[2]
		switch f[0] {
		case "E:", "W:":
			if why, ok := knownLintian[tag]; ok {
				t.Logf("lintian (known: %s): %s", why, line)
				continue
			}
			t.Errorf("lintian: %s", line)
		default:
			t.Logf("lintian: %s", line)
		}
	}
}

func checkRPM(t *testing.T, rpm, arch string) {
	testenv.Require(t, "rpm")
	out := mustRun(t, "", nil, "rpm", "-qp", "--queryformat", "[%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILENAMES}\n]", rpm)
	files := map[string][2]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		p := strings.SplitN(l, "|", 3)
		if len(p) == 3 {
			files[p[2]] = [2]string{p[0], p[1]}
		}
	}
	want := map[string][2]string{
		confFile:               {"cn", "-rw-r-----"},
		stateDir:               {"", "drwx------"},
		"/usr/bin/danectl":     {"", "-rwxr-xr-x"},
		"/usr/bin/dane-deploy": {"", "-rwxr-xr-x"},
		"/usr/lib/systemd/system/danehook.service": {"", "-rw-r--r--"},
		"/usr/lib/systemd/system/danehook.timer":   {"", "-rw-r--r--"},
		"/usr/share/zsh/site-functions/_danectl":   {"", "-rw-r--r--"},
		"/usr/share/man/man1/danectl.1.gz":         {"", "-rw-r--r--"},
		hooksDir + "/certbot/pre":                  {"", "drwxr-xr-x"},
		hooksDir + "/certbot/pre/danehook":         {"", "-rwxr-xr-x"},
	}
	for path, w := range want {
		got, ok := files[path]
		if !ok {
			t.Errorf("rpm lacks %s", path)
			continue
		}
		if strings.TrimSpace(got[0]) != w[0] || got[1] != w[1] {
			t.Errorf("rpm %s: flags %q mode %s, want flags %q mode %s", path, got[0], got[1], w[0], w[1])
		}
	}
	for path := range files {
		if strings.HasPrefix(path, "/lib/") || strings.Contains(path, "lintian") || strings.Contains(path, "vendor-completions") || strings.Contains(path, "changelog.Debian") {
			t.Errorf("rpm holds the Debian-only file %s", path)
		}
	}
	scripts := mustRun(t, "", nil, "rpm", "-qp", "--scripts", rpm)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm lacks its %s:\n%s", s, scripts)
		}
	}
	if a := mustRun(t, "", nil, "rpm", "-qp", "--queryformat", "%{ARCH}", rpm); a != map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch] {
		t.Errorf("rpm architecture %q for GOARCH %s", a, arch)
	}
}

func install(t *testing.T, deb string) {
	out := mustRun(t, "", nil, "dpkg", "-i", deb)
	for _, want := range []string{"it changes nothing until you set it up", "systemctl enable --now danehook.timer", "danectl init certbot"} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg -i output lacks %q:\n%s", want, out)
		}
	}
}

func checkFiles(t *testing.T) {
	type file struct {
		path string
		mode fs.FileMode // with fs.ModeDir for directories
	}
	want := []file{
		{confDir, fs.ModeDir | 0o755},
		{confFile, 0o640},
		{stateDir, fs.ModeDir | 0o700},
		{"/etc/postfix/danehook", fs.ModeDir | 0o700},
		{unitDir + "/danehook.service", 0o644},
		{unitDir + "/danehook.timer", 0o644},
		{hooksDir + "/certbot/pre/danehook", 0o755},
		{hooksDir + "/certbot/deploy/danehook", 0o755},
		{hooksDir + "/certbot/post/danehook", 0o755},
		{hooksDir + "/lego/lego-v4.sh", 0o755},
		{hooksDir + "/lego/lego-v5.sh", 0o755},
		{hooksDir + "/lego/lego.yml", 0o644},
		{hooksDir + "/dehydrated/hook", 0o755},
		{"/usr/share/doc/danehook/danehook.toml", 0o644},
		{"/usr/share/doc/danehook/README-packaging.md", 0o644},
		{"/usr/share/doc/danehook/changelog.Debian.gz", 0o644},
		{"/usr/share/lintian/overrides/danehook", 0o644},
		{"/usr/share/man/man5/danehook.toml.5.gz", 0o644},
	}
	for _, b := range binaries {
		want = append(want,
			file{binDir + "/" + b, 0o755},
			file{"/usr/share/man/man1/" + b + ".1.gz", 0o644},
			file{"/usr/share/bash-completion/completions/" + b, 0o644},
			file{"/usr/share/zsh/vendor-completions/_" + b, 0o644})
	}
	for _, f := range want {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModeSymlink | fs.ModePerm); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
	}

	if man := gunzip(t, "/usr/share/man/man5/danehook.toml.5.gz"); !strings.Contains(man, ".TH DANEHOOK.TOML 5") {
		t.Errorf("danehook.toml(5) lacks its .TH line:\n%.300s", man)
	}
	for _, b := range binaries {
		if out := mustRun(t, "", nil, binDir+"/"+b, "--version"); !strings.HasPrefix(out, b+" "+version1+" (commit ") {
			t.Errorf("%s --version: %q, want \"%s %s (commit …\"", b, out, b, version1)
		}
	}
	if out := mustRun(t, "", nil, binDir+"/danectl", "--help"); !strings.Contains(out, "init") || !strings.Contains(out, "config") {
		t.Errorf("danectl --help lacks init and config:\n%s", out)
	}
	for _, b := range binaries {
		man := gunzip(t, "/usr/share/man/man1/"+b+".1.gz")
		if !strings.Contains(man, ".TH "+strings.ToUpper(b)+" 1") {
			t.Errorf("man page of %s lacks its .TH line:\n%.300s", b, man)
		}
		for _, sec := range []string{".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH SEE ALSO"} {
			if !strings.Contains(man, sec) {
				t.Errorf("man page of %s lacks %s", b, sec)
			}
		}
		bash := readFile(t, "/usr/share/bash-completion/completions/"+b)
		if fn := "_" + strings.ReplaceAll(b, "-", "_"); !strings.Contains(bash, "-F "+fn+" "+b+"\n") {
			t.Errorf("bash completion of %s does not complete it:\n%s", b, bash)
		}
		if out, err := run("", nil, "bash", "-n", "/usr/share/bash-completion/completions/"+b); err != nil {
			t.Errorf("bash -n completion of %s: %v\n%s", b, err, out)
		}
		if zsh := readFile(t, "/usr/share/zsh/vendor-completions/_"+b); !strings.HasPrefix(zsh, "#compdef "+b+"\n") {
			t.Errorf("zsh completion of %s does not start with #compdef:\n%.200s", b, zsh)
		}
	}
	if man := gunzip(t, "/usr/share/man/man1/danectl.1.gz"); !strings.Contains(man, "init") || !strings.Contains(man, "check") {
		t.Errorf("danectl's man page lacks its init and config check commands")
	}
	if s := readFile(t, hooksDir+"/certbot/deploy/danehook"); !strings.Contains(s, "exec dane-deploy") {
		t.Errorf("certbot deploy wrapper does not run dane-deploy:\n%s", s)
	}
	if cf := mustRun(t, "", nil, "dpkg-query", "-W", "-f=${Conffiles}", "danehook"); !strings.Contains(cf, confFile+" ") {
		t.Errorf("dpkg conffiles %q lack %s", cf, confFile)
	}
	if _, err := os.Lstat(timerWants); err == nil {
		t.Errorf("%s exists: the package must not enable the timer", timerWants)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := run("", nil, "systemd-analyze", "verify", unitDir+"/danehook.service", unitDir+"/danehook.timer"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		testenv.Missing(t, "systemd-analyze (package systemd) to verify the units")
	}
}

// configCheck runs the installed danectl on the installed example
// configuration: valid TOML whose TSIG key file does not exist yet.
func configCheck(t *testing.T) {
	out, err := run("", []string{"DANEHOOK_CONFIG="}, binDir+"/danectl", "config", "check")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("danectl config check on the example: %v, want exit 2\n%s", err, out)
	}
	for _, want := range []string{
		"config " + confFile + ": syntax and settings ok",
		`error:   provider.primary.key_file = "/etc/danehook/tsig.key": file does not exist`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The README's steps 1-3: the key made as it says, then the check
	// passes (the package ships /etc/postfix/danehook).
	testenv.Require(t, "tsig-keygen")
	mustRun(t, "", nil, "sh", "-c", "(umask 077; tsig-keygen -a hmac-sha256 danehook > /etc/danehook/tsig.key)")
	out, err = run("", []string{"DANEHOOK_CONFIG="}, binDir+"/danectl", "config", "check")
	if err != nil {
		t.Fatalf("danectl config check after the README's tsig-keygen step: %v, want exit 0\n%s", err, out)
	}
	os.Remove("/etc/danehook/tsig.key")
}

const renewalConf = `version = 2.1.0
archive_dir = /etc/letsencrypt/archive/mail
[renewalparams]
authenticator = standalone
key_type = ecdsa
`

// initCertbot links the installed hooks into a temporary certbot directory
// with the installed danectl, then runs the pre hook through its link.
func initCertbot(t *testing.T) {
	dir := t.TempDir()
	certbotDir := filepath.Join(dir, "letsencrypt")
	live := filepath.Join(certbotDir, "live", "mail")
	for _, d := range []string{live, filepath.Join(certbotDir, "renewal"), filepath.Join(dir, "chains")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(certbotDir, "renewal", "mail.conf")
	writeFile(t, conf, renewalConf, 0o644)
	cfg := filepath.Join(dir, "danehook.toml")
	writeFile(t, cfg, fmt.Sprintf(`state_dir = %q
[provider.p]
type = "rfc2136"
server = "127.0.0.1:53"
key_file = %q
[lineage.mail]
hosts = ["mail.example.test"]
provider = "p"
chain_file = %q
certbot_lineage = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "tsig.key"), filepath.Join(dir, "chains", "mail.pem"), live), 0o600)

	args := []string{"init", "certbot", "--certbot-dir", certbotDir, "--config", cfg}
	out := mustRun(t, "", nil, binDir+"/danectl", args...)
	t.Logf("danectl init certbot:\n%s", out)
	for _, phase := range []string{"pre", "deploy", "post"} {
		link := filepath.Join(certbotDir, "renewal-hooks", phase, "danehook")
		if target, err := os.Readlink(link); err != nil || target != hooksDir+"/certbot/"+phase+"/danehook" {
			t.Errorf("%s: link to %q (%v), want the installed %s wrapper", link, target, err, phase)
		}
	}
	if !strings.Contains(readFile(t, conf), "reuse_key = True") {
		t.Errorf("reuse_key = True not set in %s:\n%s", conf, readFile(t, conf))
	}
	if out := mustRun(t, "", nil, binDir+"/danectl", args...); !strings.Contains(out, "nothing to change") {
		t.Errorf("second danectl init certbot changed something:\n%s", out)
	}
	// certbot runs the link; the wrapper finds the installed binary on PATH.
	out = mustRun(t, "", []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DANEHOOK_CONFIG=" + cfg},
		filepath.Join(certbotDir, "renewal-hooks", "pre", "danehook"))
	if !strings.Contains(out, "reuse_key = True") {
		t.Errorf("the pre hook through its link did not run dane-prerenew:\n%s", out)
	}
}

// e2eInstalled runs scenarios of scripts/e2e against the installed
// binaries and hook wrappers when DANEHOOK_PKGTEST_E2E names them.
func e2eInstalled(t *testing.T, root string) {
	pattern := os.Getenv("DANEHOOK_PKGTEST_E2E")
	if pattern == "" {
		t.Log("DANEHOOK_PKGTEST_E2E is not set: the e2e scenarios did not run with the installed binaries")
		return
	}
	out, err := run(root, []string{"DANEHOOK_BIN_DIR=" + binDir, "DANEHOOK_HOOKS_DIR=" + hooksDir},
		"go", "test", "-count=1", "-v", "-run", pattern, "./scripts/e2e/")
	if err != nil {
		t.Fatalf("go test -run %q ./scripts/e2e/ with the installed binaries: %v\n%s", pattern, err, out)
	}
	// go test reports ok when the pattern matches nothing: require passes.
	if !strings.Contains(out, "--- PASS: ") || strings.Contains(out, "no tests to run") {
		t.Fatalf("go test -run %q ./scripts/e2e/ ran no test with the installed binaries:\n%s", pattern, lastLines(out, 20))
	}
	t.Logf("e2e with the installed binaries:\n%s", lastLines(out, 5))
}

const operatorEdit = "\n# an operator's edit, kept across upgrades\n"

func upgrade(t *testing.T, deb string) {
	appendFile(t, confFile, operatorEdit)
	writeFile(t, stateDir+"/pkgtest.json", "{}\n", 0o600)
	enableTimer(t)

	out := mustRun(t, "", nil, "dpkg", "-i", deb)
	if strings.Contains(out, "it changes nothing until you set it up") {
		t.Errorf("the upgrade printed the first-install message:\n%s", out)
	}
	if v := mustRun(t, "", nil, "dpkg-query", "-W", "-f=${Version}", "danehook"); v != version2+"-1" {
		t.Errorf("installed version %q after the upgrade, want %s-1", v, version2)
	}
	if !strings.HasSuffix(readFile(t, confFile), operatorEdit) {
		t.Errorf("the upgrade lost the operator's edit of %s", confFile)
	}
	if _, err := os.Stat(stateDir + "/pkgtest.json"); err != nil {
		t.Errorf("the upgrade lost the state: %v", err)
	}
	if _, err := os.Lstat(timerWants); err != nil {
		t.Errorf("the upgrade disabled the timer: %v", err)
	}
}

// enableTimer enables danehook.timer as an operator does (systemctl works
// on unit files without a running systemd).
func enableTimer(t *testing.T) {
	t.Helper()
	testenv.Require(t, "systemctl")
	mustRun(t, "", nil, "systemctl", "enable", "danehook.timer")
	if _, err := os.Lstat(timerWants); err != nil {
		t.Fatalf("systemctl enable danehook.timer: %v", err)
	}
}

func remove(t *testing.T) {
	mustRun(t, "", nil, "dpkg", "--remove", "danehook")
	for _, b := range binaries {
		if _, err := os.Stat(binDir + "/" + b); err == nil {
			t.Errorf("%s/%s is still there after dpkg --remove", binDir, b)
		}
	}
	if !strings.HasSuffix(readFile(t, confFile), operatorEdit) {
		t.Errorf("dpkg --remove changed %s", confFile)
	}
	if _, err := os.Stat(stateDir + "/pkgtest.json"); err != nil {
		t.Errorf("dpkg --remove lost the state: %v", err)
	}
	if _, err := os.Lstat(timerWants); err == nil {
		t.Errorf("%s is still there: removal must disable the timer", timerWants)
	}
	if st := mustRun(t, "", nil, "dpkg-query", "-W", "-f=${Status}", "danehook"); st != "deinstall ok config-files" {
		t.Errorf("status after dpkg --remove %q, want \"deinstall ok config-files\"", st)
	}
}

func purge(t *testing.T) {
	mustRun(t, "", nil, "dpkg", "--purge", "danehook")
	for _, p := range []string{confDir, stateDir} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after dpkg --purge", p)
		}
	}
	if installed() {
		t.Errorf("dpkg still knows danehook after dpkg --purge")
	}
}

// installed reports whether dpkg knows danehook (installed, or removed
// with its configuration files left).
func installed() bool {
	st, err := run("", nil, "dpkg-query", "-W", "-f=${Status}", "danehook")
	return err == nil && !strings.Contains(st, "not-installed")
}

// run runs name with args in dir (the current directory when empty), with
// the environment plus env, and returns its combined output.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
