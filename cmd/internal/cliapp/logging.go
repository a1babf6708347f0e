package cliapp

// Logging and the flags every binary shares: --quiet, --verbose,
// --log-format, --version.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// Names of the logging flags every danehook binary and every danectl
// subcommand takes, and the environment variable that sets the format
// (for hooks whose command line is hard to change, and systemd units).
const (
	FlagQuiet     = "quiet"
	FlagVerbose   = "verbose"
	FlagLogFormat = "log-format"
	EnvLogFormat  = "DANEHOOK_LOG_FORMAT"
)

// Log formats of --log-format.
const (
	LogText = "text" // log/slog key=value lines, without a time (certbot and journald add theirs)
	LogJSON = "json" // one JSON object per line: time (RFC 3339), level, msg and the attributes
)

// LogOptions say what a binary logs and how: Quiet keeps warnings and
// errors only, Verbose adds debug lines (Quiet wins when both are set);
// Format is LogText or LogJSON ("" is LogText).
type LogOptions struct {
	Quiet, Verbose bool
	Format         string
}

// level returns the lowest level o lets through.
func (o LogOptions) level() slog.Level {
	switch {
	case o.Quiet:
		return slog.LevelWarn
	case o.Verbose:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// NewLogger returns the binaries' logger: records below warning level
// (debug, info) go to stdout, warnings and errors to stderr — certbot
// logs everything a hook writes on stderr as a WARNING, lego and journald
// keep the two streams apart. Each line is a log/slog text line without a
// time, or with o.Format == LogJSON one JSON object with its time in
// RFC 3339.
func NewLogger(stdout, stderr io.Writer, o LogOptions) *slog.Logger {
	return slog.New(&splitHandler{
		min: o.level(),
		out: newHandler(stdout, o.Format),
		err: newHandler(stderr, o.Format),
	})
}

func newHandler(w io.Writer, format string) slog.Handler {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	if format == LogJSON {
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
				return slog.String(slog.TimeKey, FormatTime(a.Value.Time()))
			}
			return a
		}
		return slog.NewJSONHandler(w, opts)
	}
	opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return slog.NewTextHandler(w, opts)
}

// splitHandler sends records below slog.LevelWarn to out, the others to
// err, and drops those below min.
type splitHandler struct {
	min      slog.Level
	out, err slog.Handler
}

func (h *splitHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.err.Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h *splitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &splitHandler{min: h.min, out: h.out.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h *splitHandler) WithGroup(name string) slog.Handler {
	return &splitHandler{min: h.min, out: h.out.WithGroup(name), err: h.err.WithGroup(name)}
}

// logFlags returns --quiet, --verbose and --log-format.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: FlagQuiet, Aliases: []string{"q"}, Usage: "log warnings and errors only (on stderr)"},
		&cli.BoolFlag{Name: FlagVerbose, Usage: "log debug lines too (on stdout, with the info lines)"},
		&cli.StringFlag{Name: FlagLogFormat, Value: LogText, EnvVars: []string{EnvLogFormat},
			Usage: "log line `FORMAT`: text (key=value) or json (one object per line); info and debug on stdout, warnings and errors on stderr",
			Action: func(_ *cli.Context, v string) error {
				if v != LogText && v != LogJSON {
					return Fail(ExitUsage, fmt.Errorf("--%s %q: want %q or %q", FlagLogFormat, v, LogText, LogJSON), "")
				}
				return nil
			}},
	}
}

// LogOptionsOf returns the logging flags as given to the command or to any
// command above it (danectl --quiet tick, danectl tick --quiet).
func LogOptionsOf(c *cli.Context) LogOptions {
	var o LogOptions
	if c == nil {
		return o
	}
	for _, cc := range c.Lineage() {
		if cc.IsSet(FlagQuiet) && cc.Bool(FlagQuiet) {
			o.Quiet = true
		}
		if cc.IsSet(FlagVerbose) && cc.Bool(FlagVerbose) {
			o.Verbose = true
		}
		if o.Format == "" && cc.IsSet(FlagLogFormat) {
			o.Format = cc.String(FlagLogFormat)
		}
	}
	return o
}

// Log returns the logger of the running command: NewLogger on the app's
// Writer and ErrWriter with the command's logging flags.
func Log(c *cli.Context) *slog.Logger {
	return NewLogger(c.App.Writer, c.App.ErrWriter, LogOptionsOf(c))
}

// Version and Commit are set at build time by scripts/package.sh
// (-ldflags "-X …/cliapp.Version=… -X …/cliapp.Commit=…"); when empty,
// VersionString reads the module version and VCS revision Go recorded.
var (
	Version string
	Commit  string
)

// VersionString returns "VERSION (commit REVISION[, modified], GOVERSION)":
// Version or the main module's version from runtime/debug.ReadBuildInfo
// ("(devel)" for a build without one), and Commit or the build's
// vcs.revision ("unknown" when neither was recorded, e.g. -buildvcs=false).
func VersionString() string {
	v, rev, modified := Version, Commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true" && Commit == ""
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown"
	}
	extra := ""
	if modified {
		extra = ", modified"
	}
	return fmt.Sprintf("%s (commit %s%s, %s)", v, rev, extra, runtime.Version())
}

func init() {
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version (module version, commit) and exit"}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "%s %s\n", c.App.Name, c.App.Version)
	}
}

// addCommonFlags adds the logging flags to app and to each of its commands
// (recursively), so that they work before and after a subcommand's name,
// and sets the version --version prints.
func addCommonFlags(app *cli.App) {
	if app.Version == "" {
		app.Version = VersionString()
	}
	app.Flags = appendMissing(app.Flags, logFlags())
	var walk func([]*cli.Command)
	walk = func(cs []*cli.Command) {
		for _, c := range cs {
			c.Flags = appendMissing(c.Flags, logFlags())
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

func appendMissing(fs []cli.Flag, add []cli.Flag) []cli.Flag {
	have := map[string]bool{}
	for _, f := range fs {
		for _, n := range f.Names() {
			have[n] = true
		}
	}
	for _, f := range add {
		if !have[f.Names()[0]] {
			fs = append(fs, f)
		}
	}
	return fs
}

// captureLogOptions wraps the Before of app and of every command so that
// *o holds the logging flags of the innermost command that started (Run
// prints its final error line with them).
func captureLogOptions(app *cli.App, o *LogOptions) {
	wrap := func(before cli.BeforeFunc) cli.BeforeFunc {
		return func(c *cli.Context) error {
			*o = LogOptionsOf(c)
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
	app.Before = wrap(app.Before)
	var walk func([]*cli.Command)
	walk = func(cs []*cli.Command) {
		for _, c := range cs {
			c.Before = wrap(c.Before)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// printError prints a run's final error: "NAME: error: MSG" and "hint:
// HINT" lines in text, one JSON log record (level ERROR, program, hint)
// with --log-format json.
func printError(w io.Writer, o LogOptions, name, msg, hint string) {
	if o.Format == LogJSON {
		attrs := []any{"program", name}
		if hint != "" {
			attrs = append(attrs, "hint", hint)
		}
		NewLogger(io.Discard, w, LogOptions{Format: LogJSON}).Error(strings.TrimPrefix(strings.TrimPrefix(msg, name+": error: "), name+": "), attrs...)
		return
	}
	fmt.Fprintln(w, msg)
	if hint != "" {
		fmt.Fprintln(w, "hint: "+hint)
	}
}
