// Package cliapp is what danehook's binaries share: exit codes, the error
// classification that maps library errors to them, the "NAME: error: …" and
// "hint: …" lines, and the flags and set-up every command that reads the
// configuration uses. Only binaries (cmd/) import it.
package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/schedule"
	"github.com/danehook/danehook/pkg/state"
	"github.com/urfave/cli/v2"
)

// Exit codes of every danehook binary, documented in README.md ("Exit codes").
const (
	ExitOK       = 0  // success
	ExitMismatch = 1  // a TLSA mismatch, an error-level lint, a check that failed, or something still waits
	ExitUsage    = 2  // bad input: flags, files, configuration, hook environment
	ExitTSIG     = 3  // TSIG or API authentication failure: BADKEY, BADSIG, BADTIME, bad token
	ExitRefused  = 4  // the server or API refused the change (update-policy, rejected request)
	ExitNotAuth  = 5  // the server is not authoritative for the zone (NOTAUTH, NOTZONE, zone not found)
	ExitServer   = 6  // SERVFAIL, timeouts, unreachable servers, API unavailable, concurrent change
	ExitPending  = 7  // the requested step is not safe yet (records not aged)
	ExitPostfix  = 8  // postfix check or reload failed, or the live chain does not match
	ExitLocked   = 9  // another danehook run holds the lock
	ExitSystem   = 10 // the local system failed: disk full, I/O error, read-only file system, permission denied, out of files or memory
	// ExitSIGINT and ExitSIGTERM are 128 + the signal number, what a shell
	// reports for a process the signal killed: the run was interrupted.
	ExitSIGINT  = 130
	ExitSIGTERM = 143
)

// systemErrnos are the operating-system errors that say the machine, not the
// operator's input, failed; Classify maps them to ExitSystem with these hints.
var systemErrnos = []struct {
	errno syscall.Errno
	hint  string
}{
	{syscall.ENOSPC, "the file system is full: free space (df -h) and run again; files are replaced atomically, so none was left half-written"},
	{syscall.EDQUOT, "the disk quota is exhausted: free space and run again; files are replaced atomically, so none was left half-written"},
	{syscall.EIO, "the disk or file system reported an I/O error: check the kernel log (dmesg) and the disk before running again"},
	{syscall.EROFS, "the file system is mounted read-only: remount it read-write and run again"},
	{syscall.EACCES, "permission denied: run as the user that owns the state directory and the chain files (usually root), or fix their permissions"},
	{syscall.EPERM, "operation not permitted: run as the user that owns the state directory and the chain files (usually root), or check their attributes (lsattr)"},
	{syscall.EMFILE, "too many open files: raise the limit (ulimit -n, LimitNOFILE=) and run again"},
	{syscall.ENFILE, "the system's open-file table is full: run again later"},
	{syscall.ENOMEM, "out of memory: run again when memory is available"},
}

// Error carries an exit code and an optional operator hint.
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Fail wraps err with an exit code and a hint printed on its own line.
func Fail(code int, err error, hint string) error {
	return &Error{Code: code, Err: err, Hint: hint}
}

// errSilent marks an error Run reports by its exit code alone.
var errSilent = errors.New("exit code only")

// Silent returns an error that makes Run exit with code and print nothing:
// for a command whose output already says everything, such as a monitoring
// plugin's status line (exit codes 0-3 of the Monitoring Plugins
// guidelines).
func Silent(code int) error { return &Error{Code: code, Err: errSilent} }

// hinter is implemented by library errors that know what the operator
// should do (dnsupdate.UpdateError, postfix.NotRunningError).
type hinter interface{ Hint() string }

// Classify maps an error from the libraries to an exit code and a hint: nil
// stays nil, an *Error keeps its code, the library's classes and types map
// as the README's "Exit codes" table says (TestClassify asserts every row),
// and an error wrapping one of systemErrnos (disk full, EIO, permission
// denied …) that is not a DNS, Postfix or lock error is ExitSystem: the
// input is not at fault. Any other error is ExitUsage.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *Error
	if errors.As(err, &ee) {
		return err
	}
	hint := ""
	var h hinter
	if errors.As(err, &h) {
		hint = h.Hint()
	}
	var ce *config.Error
	var km *chain.KeyMismatchError
	switch {
	case errors.As(err, &ce), errors.Is(err, config.ErrNotFound):
		return Fail(ExitUsage, err, "fix the configuration file; 'danectl config check' validates it")
	case errors.Is(err, state.ErrLocked):
		return Fail(ExitLocked, err, "another dane-* hook or danectl run is working; try again when it ends")
	case errors.Is(err, deploy.ErrPostfixNotReading):
		if hint == "" {
			hint = "make every smtpd service read danehook's chain files (smtpd_tls_chain_files), then run 'danectl tick'"
		}
		return Fail(ExitPostfix, err, hint)
	case errors.Is(err, deploy.ErrUntrusted), errors.Is(err, deploy.ErrUnsigned):
		return Fail(ExitUsage, err, hint)
	case errors.Is(err, deploy.ErrVerify), errors.Is(err, postfix.ErrNoMatch), errors.Is(err, postfix.ErrNoSTARTTLS):
		return Fail(ExitPostfix, err, "no record was removed; check that smtpd_tls_chain_files names the lineage's chain_file and that the endpoint answers, then run 'danectl tick'")
	case errors.Is(err, postfix.ErrNotRunning), isPostfixCommand(err):
		if hint == "" {
			hint = "Postfix was not reloaded; fix the cause and run dane-reload (or danectl tick) again"
		}
		return Fail(ExitPostfix, err, hint)
	case errors.Is(err, dnsupdate.ErrTSIG), errors.Is(err, dnsupdate.ErrCloudflareAuth), errors.Is(err, dnsupdate.ErrProviderAuth):
		return Fail(ExitTSIG, err, hint)
	case errors.Is(err, dnsupdate.ErrRefused), errors.Is(err, dnsupdate.ErrCloudflareRequest), errors.Is(err, dnsupdate.ErrProviderRequest):
		return Fail(ExitRefused, err, hint)
	case errors.Is(err, dnsupdate.ErrNotAuth), errors.Is(err, dnsupdate.ErrCloudflareZone), errors.Is(err, dnsupdate.ErrProviderZone):
		return Fail(ExitNotAuth, err, hint)
	case errors.Is(err, dnsupdate.ErrServer), errors.Is(err, dnsupdate.ErrPrerequisite),
		errors.Is(err, dnsupdate.ErrCloudflareUnavailable), errors.Is(err, dnsupdate.ErrProviderUnavailable), errors.Is(err, context.DeadlineExceeded):
		return Fail(ExitServer, err, hint)
	}
	// After the DNS and Postfix errors, which may wrap an errno of their
	// own (a refused connection, a postfix binary that cannot run): the
	// step that failed says more than the errno there.
	for _, se := range systemErrnos {
		if errors.Is(err, se.errno) {
			return Fail(ExitSystem, err, se.hint)
		}
	}
	switch {
	case errors.As(err, &km):
		return Fail(ExitUsage, err, "the key and the certificate come from different renewals; check the ACME client's files")
	case errors.Is(err, hookenv.ErrNoClient):
		return Fail(ExitUsage, err, "")
	}
	return Fail(ExitUsage, err, hint)
}

func isPostfixCommand(err error) bool {
	var pe *postfix.CommandError
	return errors.As(err, &pe)
}

// ErrInterrupted is the cause (context.Cause) of the context Run hands to
// the commands once SIGINT or SIGTERM arrived: "interrupted by SIGTERM".
var ErrInterrupted = errors.New("interrupted")

// Run runs app with args and returns the exit code, printing an error as
// "NAME: error: …" and its hint as "hint: …" on stderr. It never calls
// os.Exit, so every binary is testable in-process. It adds the hidden
// --generate-man and --generate-completion flags (see FlagGenerateMan) and
// enables shell completion.
//
// Signals: while app runs, the first SIGINT or SIGTERM cancels the context
// every command gets (c.Context, and Context derived from it), so library
// calls stop at their next DNS exchange or Postfix command (the wait for
// another run's lock is not cut short: state.Store.Acquire takes no
// context); Run then returns
// ExitSIGINT (130) or ExitSIGTERM (143), whatever the command returned, and
// prints "interrupted by SIGTERM" with the command's error. A second signal
// is not caught: it kills the process at once.
func Run(app *cli.App, args []string, stderr io.Writer) int {
	setGC()
	ctx, received, stop := notifySignals(context.Background())
	defer stop()
	return runContext(ctx, received, app, args, stderr)
}

// gcPercent is the garbage collector's target (runtime/debug.SetGCPercent)
// of danehook's binaries, unless GOGC is set: they are short-lived, and at
// Go's default of 100 a 5,000-owner publish spent about 14 % of its CPU in
// the collector; at 400 its peak RSS went from 50 to 55 MB.
const gcPercent = 400

func setGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// notifySignals returns a context cancelled (cause ErrInterrupted) when
// SIGINT or SIGTERM arrives, a function returning the signal received (nil
// before one), and stop, which releases the signal handler. After the first
// signal the handler is released too, so a second signal has its default
// effect.
func notifySignals(parent context.Context) (context.Context, func() os.Signal, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var mu sync.Mutex
	var got os.Signal
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			mu.Lock()
			got = s
			mu.Unlock()
			cancel(fmt.Errorf("%w by %s", ErrInterrupted, signalName(s)))
		case <-done:
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel(nil)
		})
	}
	return ctx, func() os.Signal { mu.Lock(); defer mu.Unlock(); return got }, stop
}

// signalName returns "SIGINT" or "SIGTERM".
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// signalCode returns the exit code for a signal: 128 + its number.
func signalCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return ExitSIGTERM
}

func runContext(ctx context.Context, received func() os.Signal, app *cli.App, args []string, stderr io.Writer) int {
	addDocFlags(app)
	addCommonFlags(app)
	var logOpts LogOptions
	captureLogOptions(app, &logOpts)
	if len(app.Commands) == 0 {
		// A hook has no subcommands: no "COMMANDS: help" in its --help.
		app.HideHelpCommand = true
	}
	// An unknown subcommand is bad input (ExitUsage), not urfave/cli's
	// "No help topic" exit 3, which is ExitTSIG here.
	var unknown string
	if app.CommandNotFound == nil {
		app.CommandNotFound = func(_ *cli.Context, name string) { unknown = name }
	}
	app.ExitErrHandler = func(*cli.Context, error) {}
	if app.OnUsageError == nil {
		app.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			name := app.Name
			if c.Command != nil && c.Command.Name != "" && c.Command.Name != app.Name {
				name += " " + c.Command.Name
			}
			return Fail(ExitUsage, err, "run '"+name+" --help'")
		}
	}
	err := app.RunContext(ctx, args)
	if unknown != "" && err == nil {
		err = Fail(ExitUsage, fmt.Errorf("unknown command %q", unknown), "run '"+app.Name+" --help' for the list of commands")
	}
	if sig := received(); sig != nil {
		msg := app.Name + ": error: " + ErrInterrupted.Error() + " by " + signalName(sig)
		switch {
		case errors.Is(err, ErrInterrupted): // the error says where the signal stopped the run
			msg = app.Name + ": error: " + err.Error()
		case err != nil:
			msg += ": " + err.Error()
		}
		fmt.Fprintln(stderr, msg)
		fmt.Fprintln(stderr, "hint: the run stopped where it was; danehook writes every file atomically and every step resumes, so run it again (the timer's next 'danectl tick' also does)")
		return signalCode(sig)
	}
	if err == nil || errors.Is(err, errDocsPrinted) {
		return ExitOK
	}
	code := ExitUsage
	var ee *Error
	var ce cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		code = ee.Code
	case errors.As(err, &ce):
		code = ce.ExitCode()
	}
	if errors.Is(err, errSilent) {
		return code
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, app.Name+":") {
		msg = app.Name + ": error: " + msg
	}
	// Some library errors already end with their advice; say it once.
	hint := ""
	if ee != nil && ee.Hint != "" && !strings.Contains(msg, ee.Hint) {
		hint = ee.Hint
	}
	printError(stderr, logOpts, app.Name, msg, hint)
	return code
}

// ConfigFlag is --config, shared by every command that reads the configuration.
var ConfigFlag = &cli.StringFlag{
	Name:    "config",
	Aliases: []string{"c"},
	Usage:   "configuration `FILE` (default $" + config.EnvConfig + " or " + config.DefaultPath + ")",
}

// JSONFlag is --json.
var JSONFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}

// ConfigPath returns the configuration file: --config given to the command
// or to the program (danectl --config F status), else $DANEHOOK_CONFIG,
// else the default.
func ConfigPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if v := cc.String("config"); v != "" {
			return config.Path(v)
		}
	}
	return config.Path("")
}

// LockWait is how long the engines Engine returns wait for another run's
// lock before failing with ExitLocked; 0 means deploy.DefaultLockWait. Only
// tests change it (to reach exit 9 without waiting 90 s).
var LockWait time.Duration

// Engine loads the configuration named by --config and returns an engine.
func Engine(c *cli.Context) (*deploy.Engine, error) {
	cfg, err := config.Load(ConfigPath(c))
	if err != nil {
		return nil, Classify(err)
	}
	Log(c).Debug("configuration loaded", "file", cfg.Path, "state_dir", cfg.State(),
		"lineages", strings.Join(cfg.LineageNames(), ","), "providers", len(cfg.Providers))
	e := deploy.New(cfg)
	e.LockWait = LockWait
	e.Debug = Log(c).Debug
	e.NewPublisher = func(p *config.Provider) (deploy.Publisher, error) { return NewPublisher(p) }
	if e.Scheduler, err = schedule.Detect(cfg.Schedule.Via); err != nil {
		// Scheduling never fails a run: status shows why nothing was
		// scheduled, and the timer completes the step.
		e.Scheduler = schedule.Failing{Err: err}
	}
	if _, ok := e.Scheduler.(schedule.At); ok {
		e.Scheduler = schedule.At{LogFile: filepath.Join(cfg.State(), "scheduled-tick.log")}
	}
	return e, nil
}

// Context returns the command's context (cancelled by Run on SIGINT or
// SIGTERM) bounded by timeout.
func Context(c *cli.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, timeout)
}

// FormatTime is the one format of every time danehook prints for people
// and in logs: RFC 3339 in UTC, to the second ("2026-11-29T16:12:11Z");
// "" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// When formats the time until t for people: "in 9m30s
// (2026-11-29T16:12:11Z)", "now", or "unknown (a server blocks it)" for
// the zero time.
func When(t, now time.Time) string {
	if t.IsZero() {
		return "unknown (a server blocks it)"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return fmt.Sprintf("in %s (%s)", d, FormatTime(t))
}

// Logger returns a logger writing every level to w as log/slog text lines.
//
// Deprecated: use Log(c), which sends info to stdout and warnings to
// stderr and honours --quiet, --verbose and --log-format.
func Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// LogReload logs what a reload step did.
func LogReload(log *slog.Logger, r *deploy.ReloadResult) {
	if r == nil {
		return
	}
	for _, rr := range r.Published {
		log.Info("published a record a chain that may be served needs", "record", rr)
	}
	for _, h := range r.HeldFirst {
		log.Warn("first TLSA records not published", "owner_reason", h)
	}
	for _, s := range r.Switched {
		log.Info("pending switch completed: records aged, new chain installed", "lineage", s)
	}
	for name, p := range r.Pending {
		log.Info("switch still pending: Postfix keeps serving the previous chain", "lineage", name,
			"new_key", "3 1 1 "+p.SPKI, "safe", When(p.SafeAt, time.Now()), "blocking", strings.Join(p.Blocking, "; "))
	}
	if r.Reloaded {
		log.Info("postfix check passed; postfix reloaded")
	}
	for _, v := range r.Verified {
		log.Info("live STARTTLS chain verified", "match", v)
	}
	for _, rm := range r.Removed {
		log.Info("removed owned record no chain needs", "record", rm)
	}
	for _, h := range r.Held {
		log.Info("kept an owned record no longer wanted", "record", h)
	}
	for _, n := range r.NotIssued {
		log.Info("nothing to do: " + n)
	}
	for _, n := range r.Notices {
		log.Warn("postfix does not read the chain file yet: " + n)
	}
}
