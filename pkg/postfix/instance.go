package postfix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instance is one Postfix instance, addressed by its configuration
// directory. The zero value is the default instance (/etc/postfix) run
// through "postfix" and "postconf" from PATH with DefaultTimeout.
type Instance struct {
	// ConfigDir is passed as `-c DIR`; "" means the default config
	// directory (/etc/postfix on Debian).
	ConfigDir string
	// Postfix is the postfix program; default "postfix" from PATH.
	Postfix string
	// Postconf is the postconf program; default "postconf" next to an
	// explicit Postfix path, else from PATH.
	Postconf string
	// Timeout bounds each command (postfix or postconf) run; zero means
	// DefaultTimeout.
	Timeout time.Duration

	// ServedCache, when set, is a file (written 0600, atomically) where
	// Served keeps its last result; see Served.
	ServedCache string

	noTerminal bool   // capture output through pipes only (tests of the maillog path)
	maillog    string // maillog_file given by SetMaillog
	maillogSet bool
	queueDir   string // queue_directory given by SetQueueDirectory
}

// SetMaillog gives the instance its maillog_file (Config.Maillog of this
// run's Served), so that Reload and Check read Postfix's log from there
// without running `postconf -x -h maillog_file` again.
func (in *Instance) SetMaillog(path string) {
	in.maillog, in.maillogSet = path, true
}

// ErrNotRunning is matched (errors.Is) by the error of Reload when the
// instance's master process is not running.
var ErrNotRunning = errors.New("postfix is not running")

// NotRunningError is returned by Reload for a stopped instance. It matches
// ErrNotRunning and carries the command that fixes it.
type NotRunningError struct {
	ConfigDir string // "" for the default instance
}

// Error returns "postfix -c DIR reload: postfix is not running".
func (e *NotRunningError) Error() string {
	return fmt.Sprintf("%s reload: %v", e.command("postfix"), ErrNotRunning)
}

// Is reports whether target is ErrNotRunning.
func (e *NotRunningError) Is(target error) bool { return target == ErrNotRunning }

// Hint returns the command an operator runs to start the instance:
// "postfix start" or "postfix -c DIR start".
func (e *NotRunningError) Hint() string { return e.command("postfix") + " start" }

func (e *NotRunningError) command(prog string) string {
	if e.ConfigDir == "" {
		return prog
	}
	return prog + " -c " + e.ConfigDir
}

// Check runs `postfix [-c DIR] check`, which validates main.cf and master.cf
// and repairs queue directory ownership, then checks, for every smtpd
// service that offers TLS (see Served: main.cf and master.cf -o overrides),
// that every file it reads its keys and certificates from
// (smtpd_tls_chain_files, or the legacy cert/key files) is a readable
// regular file holding PEM blocks and that together they hold a private key
// and a certificate: `postfix check` does not look at TLS files, and a
// missing chain file makes smtpd announce STARTTLS and then fail it (seen
// with Postfix 3.7). A failed postfix command is a *CommandError naming the
// cause Postfix reported (from its terminal output or maillog_file).
func (in *Instance) Check(ctx context.Context) error {
	if err := in.run(ctx, "check"); err != nil {
		return err
	}
	cfg, err := in.Served(ctx)
	if err != nil {
		return err
	}
	return in.CheckChainFiles(cfg)
}

// CheckChainFiles checks, in process, the key and certificate files every
// smtpd service of cfg (from Served) reads: each exists, parses, and each
// key comes with its certificate (the part of Check that `postfix check`
// itself does not do). Errors name the service and parameter.
func (in *Instance) CheckChainFiles(cfg *Config) error {
	checked := map[string]bool{}
	for _, s := range cfg.Services {
		files := s.Files()
		key := strings.Join(files, "\x00")
		if !s.Offers() || len(files) == 0 || checked[key] {
			continue
		}
		checked[key] = true
		label, param := ParamChainFiles, ParamChainFiles
		if len(s.ChainFiles) == 0 {
			label, param = s.CertKeyParams[0][0]+"/"+s.CertKeyParams[0][1], s.CertKeyParams[0][0]
		}
		if s.Source[param] != "main.cf" {
			label = "service " + s.Service + ": " + label
		}
		if err := checkChainFiles(label, files); err != nil {
			return fmt.Errorf("check %s: %w", in.describe(), err)
		}
	}
	return nil
}

// describe names the instance in errors: `postfix config "/etc/x"`.
func (in *Instance) describe() string {
	if in.ConfigDir == "" {
		return "postfix default config"
	}
	return fmt.Sprintf("postfix config %q", in.ConfigDir)
}

// checkChainFiles verifies the files a service reads (see Check); label
// names them in errors ("smtpd_tls_chain_files").
func checkChainFiles(label string, files []string) error {
	var keys, certs int
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %q is not a regular file", label, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		n := 0
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			n++
			switch {
			case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
				keys++
			case blk.Type == "CERTIFICATE":
				certs++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: %q holds no PEM block", label, f)
		}
	}
	if len(files) > 0 && (keys == 0 || certs == 0) {
		return fmt.Errorf("%s %q: %d private keys and %d certificates, want at least one of each", label, strings.Join(files, ", "), keys, certs)
	}
	return nil
}

// ReloadSettle is how long Reload waits after `postfix reload` returned
// when it cannot watch the previous generation's smtpd processes exit (no
// queue directory given, no such process, not Linux).
// postfix-script returns once it sent master SIGHUP; master applies it
// asynchronously. A connection in the next few milliseconds may still be
// accepted by an idle smtpd of the previous generation, and since the
// reload replaces tlsmgr, that smtpd's first TLS session fails to get its
// PRNG seed and Postfix's attr_clnt sleeps 1 s before it reconnects: the
// handshake takes 1.02 s and presents the previous chain. Measured on the
// lab (Postfix 3.7, 2 cores), handshakes right after `postfix reload`:
// 20 of 100 stalled with no wait, 0 of 100 after 10 ms, 0 of 100 after 20 ms.
const ReloadSettle = 20 * time.Millisecond

// ReloadGrace is how long Reload waits, after the first smtpd of the
// previous generation exited, for the others: an idle one exits within
// milliseconds of the first (on a loaded CI machine one took longer than
// 20 ms), one in an SMTP session only when its session ends, and it
// accepts no connection meanwhile.
const ReloadGrace = 100 * time.Millisecond

// ReloadSettleMax bounds Reload's wait for the previous generation's smtpd
// processes: one still in an SMTP session exits only once its session
// ends, and the stall the wait avoids costs about 1 s itself.
const ReloadSettleMax = time.Second

// Reload runs `postfix [-c DIR] reload`: the master re-reads main.cf and
// master.cf and idle smtpd processes are replaced, so new connections get
// the chain files as they are now. postfix-script returns once the signal
// is sent; Postfix applies it asynchronously: the master closes the status
// pipe of every child of the previous generation, and each idle smtpd
// exits when it sees that (Postfix single_server: master_status EOF).
// On an idle lab that took 21–25 ms after `postfix reload` returned; on a
// loaded machine it can take longer, and a handshake before it may reach
// such an smtpd (see ReloadSettle). So with the queue directory known
// (SetQueueDirectory) and on Linux, Reload lists master's smtpd children
// (/proc) before the reload and, after it, waits until every one of them
// exited, or until one has and ReloadGrace passed since (the others are
// in SMTP sessions and accept nothing), at most ReloadSettleMax; otherwise
// it waits ReloadSettle. It returns early when ctx ends.
//
// One stall remains that no wait after the reload avoids: an smtpd that
// master starts for a client connecting while postfix-script runs (before
// master handles SIGHUP) has its first tlsmgr connection torn down by the
// reload and sleeps 1 s before it reconnects (attr_clnt; seen with strace),
// and master queues new connections behind it since it counts it as
// available. Measured with three clients handshaking every 30 ms beside
// the reloads: 8–16 of 40 handshakes right after Reload took 1.01–1.4 s,
// whatever else Reload waited for (the old tlsmgr, anvil and postlogd were
// tried). A mail server without clients at that moment never sees it.
// A stopped instance gives a *NotRunningError (errors.Is ErrNotRunning,
// hint "postfix start"); other failures a *CommandError.
func (in *Instance) Reload(ctx context.Context) error {
	master, old := in.smtpdGeneration()
	// No separate `postfix status` first: `postfix reload` says itself
	// that the mail system is not running (postfix-script), and each
	// postfix-script run costs tens of milliseconds.
	if err := in.run(ctx, "reload"); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && notRunning(ce) {
			return &NotRunningError{ConfigDir: in.ConfigDir}
		}
		return err
	}
	if len(old) == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(ReloadSettle):
		}
		return nil
	}
	waitGenerationGone(ctx, master, old, 2*time.Millisecond)
	return nil
}

// SetQueueDirectory gives the instance its queue_directory (Config.
// QueueDirectory of this run's Served), where master writes pid/master.pid:
// Reload then waits for the previous generation's smtpd processes to exit
// instead of a fixed ReloadSettle.
func (in *Instance) SetQueueDirectory(dir string) { in.queueDir = dir }

// smtpdGeneration returns the master's pid and its smtpd children, read
// from <queue_directory>/pid/master.pid and /proc; 0 and nil when the
// queue directory is unknown, the pid file unreadable or /proc absent.
func (in *Instance) smtpdGeneration() (int, []int) {
	if in.queueDir == "" {
		return 0, nil
	}
	b, err := os.ReadFile(filepath.Join(in.queueDir, "pid", "master.pid"))
	if err != nil {
		return 0, nil
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || master <= 1 {
		return 0, nil
	}
	return master, childrenNamed(master, "smtpd")
}

// waitGenerationGone polls every interval until none of pids is still a
// child of master, or one is gone and ReloadGrace has passed since, or
// ReloadSettleMax has passed, or ctx ends.
func waitGenerationGone(ctx context.Context, master int, pids []int, interval time.Duration) {
	start := time.Now()
	var firstGone time.Time
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		alive := 0
		for _, p := range pids {
			if childOf(p, master) {
				alive++
			}
		}
		now := time.Now()
		if alive < len(pids) && firstGone.IsZero() {
			firstGone = now
		}
		switch {
		case alive == 0,
			!firstGone.IsZero() && now.Sub(firstGone) >= ReloadGrace,
			now.Sub(start) >= ReloadSettleMax:
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Running reports whether the instance's master process runs, from
// `postfix [-c DIR] status` (exit 0: running; exit 1 with "is not running":
// stopped). Anything else, such as a broken main.cf, is a *CommandError.
func (in *Instance) Running(ctx context.Context) (bool, error) {
	err := in.run(ctx, "status")
	if err == nil {
		return true, nil
	}
	var ce *CommandError
	if errors.As(err, &ce) && notRunning(ce) {
		return false, nil
	}
	return false, err
}

// notRunning reports whether a failed command said the master is not
// running (postfix-script: "the Postfix mail system is not running").
func notRunning(ce *CommandError) bool {
	return strings.Contains(ce.text(), "mail system is not running")
}

// ChainFiles returns the files of smtpd_tls_chain_files (Postfix ≥ 3.4) as
// `postconf [-c DIR] -x -h` prints them, $parameters expanded, split on
// commas and white space; an empty list when the parameter is unset.
func (in *Instance) ChainFiles(ctx context.Context) ([]string, error) {
	out, err := in.postconf(ctx, "-x", "-h", "smtpd_tls_chain_files")
	if err != nil {
		return nil, err
	}
	return splitList(out), nil
}

// splitList splits a Postfix list value on commas and white space
// (postconf(5): "separated by comma and/or whitespace"), dropping empty
// elements; nil when there are none.
func splitList(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(f) == 0 {
		return nil
	}
	return f
}

// ConfigDigest returns the hex SHA-256 of main.cf and master.cf of the
// instance's configuration directory (ConfigDir, or /etc/postfix): a run
// that finds the digest of the last passing `postfix check` may skip
// `postfix check` (the chain files are checked in process anyway).
func (in *Instance) ConfigDigest() (string, error) {
	dir := in.ConfigDir
	if dir == "" {
		dir = "/etc/postfix"
	}
	h := sha256.New()
	for _, f := range []string{"main.cf", "master.cf"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
