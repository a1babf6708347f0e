// Package postfixlab starts a real, self-contained Postfix instance for
// tests: its own config directory, queue, data directory, chain files and
// maillog under t.TempDir(), smtpd with STARTTLS on 127.0.0.1:<free port>,
// no relaying, no delivery outside the lab.
//
// Every Start is independent (its own queue_directory, data_directory,
// syslog_name, port and master.pid), so test packages can run labs in
// parallel. It needs root and the postfix package (LAB-NOTES §3). The default
// /etc/postfix/main.cf is neither read nor created.
//
// Layout under Dir:
//
//	etc/main.cf, etc/master.cf   ConfigDir
//	spool/                       queue_directory (master.pid in spool/pid)
//	data/                        data_directory, owned by postfix
//	tls/ecdsa.pem                smtpd_tls_chain_files (key then certificate), 0600
//	mail/                        mail_spool_directory
//	maillog                      maillog_file
package postfixlab

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/postfix"
)

// Hostname is the lab's myhostname and the name in its initial certificates.
const Hostname = "mail.example.test"

// Options configure a Lab. The zero value serves one ECDSA chain file,
// tls/ecdsa.pem.
type Options struct {
	// ChainFiles are the files of smtpd_tls_chain_files, in order; relative
	// names are under Dir/tls. Default {"ecdsa.pem"}. Each is created with a
	// fresh self-signed key and certificate for Hostname: RSA 2048 when the
	// base name contains "rsa", ECDSA P-256 otherwise.
	ChainFiles []string
	// OtherChainFiles are created like ChainFiles (same naming rule) but
	// not listed in smtpd_tls_chain_files: files for master.cf overrides
	// (Master) or legacy parameters (Main). Their paths are in
	// Lab.OtherChainFiles.
	OtherChainFiles []string
	// Main are extra main.cf lines ("name = value"), appended last so they
	// override the lab's settings.
	Main []string
	// SMTPDProcessLimit is the maxproc of the smtpd service in master.cf;
	// 0 keeps Postfix's default (default_process_limit, 100). With 1, one
	// smtpd serves every connection in turn, so a test can rely on the
	// process that loaded the chain files serving the next connection.
	SMTPDProcessLimit int
	// Master are extra master.cf lines, appended after the lab's services:
	// for example a second smtpd service on a port from FreePort with -o
	// overrides.
	Master []string
	// Stopped writes the configuration and runs `postfix check` but does not
	// start the master; call Lab.Start.
	Stopped bool
}

// Lab is a Postfix instance under test. All fields are read-only.
type Lab struct {
	Dir        string   // the lab's root directory
	ConfigDir  string   // Dir/etc, the -c directory
	Addr       string   // "127.0.0.1:PORT" where smtpd listens
	Port       int      // PORT
	ChainFiles []string // absolute paths of smtpd_tls_chain_files
	// OtherChainFiles are the absolute paths of Options.OtherChainFiles.
	OtherChainFiles []string
	Maillog         string           // maillog_file
	Instance        postfix.Instance // the instance, for pkg/postfix calls
}

// Start creates the lab under t.TempDir(), writes a self-signed chain file
// for each Options.ChainFiles, runs `postfix check` and `postfix start`, and
// registers a cleanup that stops the master, waits until every process of
// the instance exited and, if the test failed, logs the maillog tail. It
// needs root and the postfix and postconf commands; when they are missing
// the test is skipped, or fails under CI=true.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	testenv.Require(t, "postfix", "postconf")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (a Postfix instance must be started as root)")
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		testenv.Missing(t, "user postfix (apt-get install postfix)")
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)

	dir := t.TempDir()
	// Postfix daemons run as the postfix user and chdir into the queue
	// directory: every directory above it must be searchable.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
	}
	l := &Lab{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		Maillog:   filepath.Join(dir, "maillog"),
	}
	l.Instance = postfix.Instance{ConfigDir: l.ConfigDir, Timeout: 30 * time.Second}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"etc", 0o755}, {"spool", 0o755}, {"data", 0o700}, {"tls", 0o700}, {"mail", 0o1777}} {
		p := filepath.Join(dir, d.name)
		if err := os.Mkdir(p, d.mode); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatalf("postfixlab: %v", err)
	}

	files := opts.ChainFiles
	if len(files) == 0 {
		files = []string{"ecdsa.pem"}
	}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, "tls", f)
		}
		key, cert := SelfSigned(t, Hostname, strings.Contains(filepath.Base(f), "rsa"))
		WriteChain(t, f, key, cert)
		l.ChainFiles = append(l.ChainFiles, f)
	}
	for _, f := range opts.OtherChainFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, "tls", f)
		}
		key, cert := SelfSigned(t, Hostname, strings.Contains(filepath.Base(f), "rsa"))
		WriteChain(t, f, key, cert)
		l.OtherChainFiles = append(l.OtherChainFiles, f)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfixlab %s: maillog tail:\n%s", l.ConfigDir, l.MaillogTail(40))
		}
		if err := l.stop(); err != nil {
			t.Errorf("postfixlab: %v", err)
		}
	})

	// A free port can be taken by a parallel test before the master binds
	// it: the start then fails with "Address already in use"; retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l.Port = freePort(t)
		l.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port))
		if err := l.writeConfig(opts); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
		if err := l.Instance.Check(t.Context()); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
		if opts.Stopped {
			return l
		}
		size := l.maillogSize()
		if lastErr = l.start(); lastErr == nil {
			return l
		}
		if !strings.Contains(l.maillogSince(size), "Address already in use") {
			break
		}
	}
	t.Fatalf("postfixlab: %v", lastErr)
	return nil
}

// Start starts the master of a lab made with Options.Stopped or stopped
// with Stop, and waits until smtpd's port accepts connections.
func (l *Lab) Start(t testing.TB) {
	t.Helper()
	if err := l.start(); err != nil {
		t.Fatalf("postfixlab: %v", err)
	}
}

// Stop stops the master (`postfix stop`) and waits until every process of
// the instance exited.
func (l *Lab) Stop(t testing.TB) {
	t.Helper()
	if err := l.stop(); err != nil {
		t.Fatalf("postfixlab: %v", err)
	}
}

// start runs `postfix -c DIR start` and waits for the listener.
func (l *Lab) start() error {
	if out, err := l.postfix("start"); err != nil {
		return fmt.Errorf("postfix -c %s start: %v: %s%s", l.ConfigDir, err, out, l.maillogHint())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", l.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postfix -c %s started but %s does not accept connections: %v%s", l.ConfigDir, l.Addr, err, l.maillogHint())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops the master if it runs and waits up to 10 s for the instance's
// process group (the master and its daemons) to exit, then kills what is
// left.
func (l *Lab) stop() error {
	pid := l.masterPID()
	if pid == 0 {
		return nil
	}
	if len(groupMembers(pid)) == 0 {
		return nil
	}
	out, err := l.postfix("stop")
	deadline := time.Now().Add(10 * time.Second)
	for len(groupMembers(pid)) > 0 {
		if time.Now().After(deadline) {
			syscall.Kill(-pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			if m := groupMembers(pid); len(m) > 0 {
				return fmt.Errorf("postfix -c %s stop: processes %v still running after SIGKILL", l.ConfigDir, m)
			}
			return fmt.Errorf("postfix -c %s stop: killed the process group after 10 s (stop: %v %s)", l.ConfigDir, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// postfix runs `postfix -c DIR args...` with a 30 s timeout and returns its
// output. Output goes to a file, not a pipe: the master started by `postfix
// start` outlives the command.
func (l *Lab) postfix(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := os.CreateTemp(l.Dir, "postfix-out-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, "postfix", append([]string{"-c", l.ConfigDir}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return strings.TrimSpace(string(out)), err
}

// masterPID reads spool/pid/master.pid; 0 when absent.
func (l *Lab) masterPID() int {
	b, err := os.ReadFile(filepath.Join(l.Dir, "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
// The master is a session leader and its daemons stay in its group.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// writeConfig writes main.cf and master.cf for the current port.
func (l *Lab) writeConfig(opts Options) error {
	id := make([]byte, 4)
	rand.Read(id)
	main := []string{
		"# postfixlab: a throw-away instance for tests",
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(l.Dir, "spool"),
		"data_directory = " + filepath.Join(l.Dir, "data"),
		"mail_spool_directory = " + filepath.Join(l.Dir, "mail"),
		"maillog_file = " + l.Maillog,
		"maillog_file_prefixes = " + l.Dir,
		"syslog_name = postfixlab-" + hex.EncodeToString(id),
		"myhostname = " + Hostname,
		"mydomain = example.test",
		"myorigin = $myhostname",
		"mydestination =",
		"relay_domains =",
		"mynetworks = 127.0.0.0/8",
		"inet_interfaces = loopback-only",
		"inet_protocols = ipv4",
		"smtpd_relay_restrictions = reject_unauth_destination",
		"smtpd_recipient_restrictions = reject_unauth_destination",
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"biff = no",
		"smtpd_tls_security_level = may",
		"smtpd_tls_chain_files = " + strings.Join(l.ChainFiles, ", "),
		"smtpd_tls_loglevel = 1",
		"smtp_tls_security_level = none",
	}
	main = append(main, opts.Main...)
	maxproc := "-"
	if opts.SMTPDProcessLimit > 0 {
		maxproc = strconv.Itoa(opts.SMTPDProcessLimit)
	}
	master := []string{
		"# postfixlab: chroot n for a queue directory outside /var/spool",
		fmt.Sprintf("127.0.0.1:%d inet n - n - %s smtpd", l.Port, maxproc),
		"pickup     unix n - n 60 1 pickup",
		"cleanup    unix n - n - 0 cleanup",
		"qmgr       unix n - n 300 1 qmgr",
		"tlsmgr     unix - - n 1000? 1 tlsmgr",
		"rewrite    unix - - n - - trivial-rewrite",
		"bounce     unix - - n - 0 bounce",
		"defer      unix - - n - 0 bounce",
		"trace      unix - - n - 0 bounce",
		"verify     unix - - n - 1 verify",
		"flush      unix n - n 1000? 0 flush",
		"proxymap   unix - - n - - proxymap",
		"proxywrite unix - - n - 1 proxymap",
		"smtp       unix - - n - - smtp",
		"relay      unix - - n - - smtp",
		"showq      unix n - n - - showq",
		"error      unix - - n - - error",
		"retry      unix - - n - - error",
		"discard    unix - - n - - discard",
		"local      unix - n n - - local",
		"virtual    unix - n n - - virtual",
		"lmtp       unix - - n - - lmtp",
		"anvil      unix - - n - 1 anvil",
		"scache     unix - - n - 1 scache",
		"postlog    unix-dgram n - n - 1 postlogd",
	}
	master = append(master, opts.Master...)
	if err := os.WriteFile(filepath.Join(l.ConfigDir, "main.cf"), []byte(strings.Join(main, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.ConfigDir, "master.cf"), []byte(strings.Join(master, "\n")+"\n"), 0o644)
}

// MaillogTail returns the last n lines of the maillog.
func (l *Lab) MaillogTail(n int) string {
	b, err := os.ReadFile(l.Maillog)
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (l *Lab) maillogHint() string {
	return "\nmaillog tail:\n" + l.MaillogTail(15)
}

func (l *Lab) maillogSize() int64 {
	fi, err := os.Stat(l.Maillog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (l *Lab) maillogSince(off int64) string {
	b, err := os.ReadFile(l.Maillog)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// services added with Options.Master.
func FreePort(t testing.TB) int { t.Helper(); return freePort(t) }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixlab: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WriteChain writes a served chain file for smtpd_tls_chain_files: keyPEM
// then certsPEM (leaf first, then issuers), atomically (temporary file in
// the same directory, fsync, rename) with mode 0600.
func WriteChain(t testing.TB, path string, keyPEM, certsPEM []byte) {
	t.Helper()
	data := append(append(bytes.TrimRight(keyPEM, "\n"), '\n'), certsPEM...)
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		t.Fatalf("postfixlab: %v", err)
	}
}

// SelfSigned makes a key (RSA 2048 if useRSA, else ECDSA P-256) and a
// self-signed certificate for host valid from an hour ago for 30 days, and
// returns both PEM encoded (the key as PKCS#8).
func SelfSigned(t testing.TB, host string, useRSA bool) (keyPEM, certPEM []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	if useRSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatalf("postfixlab: generate key: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("postfixlab: create certificate: %v", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("postfixlab: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Processes returns the pids of the instance's live processes (the master's
// process group) whose command name (/proc/PID/comm) is comm, e.g. "smtpd";
// nil when the master is not running.
func (l *Lab) Processes(comm string) []int {
	pid := l.masterPID()
	if pid == 0 {
		return nil
	}
	var pids []int
	for _, p := range groupMembers(pid) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pids = append(pids, p)
		}
	}
	return pids
}
