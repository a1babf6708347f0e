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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/state"
	"github.com/urfave/cli/v2"
)

// Exit codes of every danehook binary, documented in README.md ("Exit codes").
const (
	ExitOK       = 0 // success
	ExitMismatch = 1 // a TLSA mismatch, an error-level lint, a check that failed, or something still waits
	ExitUsage    = 2 // bad input: flags, files, configuration, hook environment
	ExitTSIG     = 3 // TSIG or API authentication failure: BADKEY, BADSIG, BADTIME, bad token
	ExitRefused  = 4 // the server or API refused the change (update-policy, rejected request)
	ExitNotAuth  = 5 // the server is not authoritative for the zone (NOTAUTH, NOTZONE, zone not found)
	ExitServer   = 6 // SERVFAIL, timeouts, unreachable servers, API unavailable, concurrent change
	ExitPending  = 7 // the requested step is not safe yet (records not aged)
	ExitPostfix  = 8 // postfix check or reload failed, or the live chain does not match
	ExitLocked   = 9 // another danehook run holds the lock
)

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

// hinter is implemented by library errors that know what the operator
// should do (dnsupdate.UpdateError, postfix.NotRunningError).
type hinter interface{ Hint() string }

// Classify maps an error from the libraries to an exit code and a hint.
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
	case errors.Is(err, deploy.ErrVerify), errors.Is(err, postfix.ErrNoMatch), errors.Is(err, postfix.ErrNoSTARTTLS):
		return Fail(ExitPostfix, err, "no record was removed; check that smtpd_tls_chain_files names the lineage's chain_file and that the endpoint answers, then run 'danectl tick'")
	case errors.Is(err, postfix.ErrNotRunning), isPostfixCommand(err):
		if hint == "" {
			hint = "Postfix was not reloaded; fix the cause and run dane-reload (or danectl tick) again"
		}
		return Fail(ExitPostfix, err, hint)
	case errors.Is(err, dnsupdate.ErrTSIG), errors.Is(err, dnsupdate.ErrCloudflareAuth):
		return Fail(ExitTSIG, err, hint)
	case errors.Is(err, dnsupdate.ErrRefused), errors.Is(err, dnsupdate.ErrCloudflareRequest):
		return Fail(ExitRefused, err, hint)
	case errors.Is(err, dnsupdate.ErrNotAuth), errors.Is(err, dnsupdate.ErrCloudflareZone):
		return Fail(ExitNotAuth, err, hint)
	case errors.Is(err, dnsupdate.ErrServer), errors.Is(err, dnsupdate.ErrPrerequisite),
		errors.Is(err, dnsupdate.ErrCloudflareUnavailable), errors.Is(err, context.DeadlineExceeded):
		return Fail(ExitServer, err, hint)
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

// Run runs app with args and returns the exit code, printing an error as
// "NAME: error: …" and its hint as "hint: …" on stderr. It never calls
// os.Exit, so every binary is testable in-process. It adds the hidden
// --generate-man and --generate-completion flags (see FlagGenerateMan) and
// enables shell completion.
func Run(app *cli.App, args []string, stderr io.Writer) int {
	addDocFlags(app)
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
	err := app.Run(args)
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
	msg := err.Error()
	if !strings.HasPrefix(msg, app.Name+":") {
		msg = app.Name + ": error: " + msg
	}
	fmt.Fprintln(stderr, msg)
	// Some library errors already end with their advice; say it once.
	if ee != nil && ee.Hint != "" && !strings.Contains(msg, ee.Hint) {
		fmt.Fprintln(stderr, "hint: "+ee.Hint)
	}
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

// Engine loads the configuration named by --config and returns an engine.
func Engine(c *cli.Context) (*deploy.Engine, error) {
	cfg, err := config.Load(ConfigPath(c))
	if err != nil {
		return nil, Classify(err)
	}
	return deploy.New(cfg), nil
}

// Context returns a context cancelled on SIGINT/SIGTERM and after timeout.
func Context(c *cli.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

// When formats the time until t for people ("in 9m30s (…)", "now", "unknown").
func When(t, now time.Time) string {
	if t.IsZero() {
		return "unknown (a server blocks it)"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return fmt.Sprintf("in %s (%s)", d, t.Local().Format("2006-01-02 15:04:05 MST"))
}

// Logger returns the binaries' logger: log/slog text lines on w (stderr,
// which certbot and lego capture and show).
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
	for _, a := range r.Rotations {
		log.Info("rotate_every: " + a)
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
}
