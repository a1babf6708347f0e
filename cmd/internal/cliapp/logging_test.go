package cliapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// logApp is an app with one subcommand "work" that logs one line per
// level, and a hook-like app when hook is true (no subcommands).
func logApp(out, errw *bytes.Buffer, hook bool, fail error) *cli.App {
	act := func(c *cli.Context) error {
		log := Log(c)
		log.Debug("debug line", "n", 1)
		log.Info("info line", "n", 2)
		log.Warn("warn line", "n", 3)
		log.Error("error line", "n", 4)
		return fail
	}
	app := &cli.App{Name: "t", Writer: out, ErrWriter: errw}
	if hook {
		app.Action = act
	} else {
		app.Commands = []*cli.Command{{Name: "work", Action: act}}
		app.HideHelpCommand = true
	}
	return app
}

func TestLogStreamsAndLevels(t *testing.T) {
	cases := []struct {
		name           string
		hook           bool
		args           []string
		stdout, stderr []string // messages, in order
	}{
		{"default", true, nil, []string{"info line"}, []string{"warn line", "error line"}},
		{"quiet", true, []string{"--quiet"}, nil, []string{"warn line", "error line"}},
		{"quiet short", true, []string{"-q"}, nil, []string{"warn line", "error line"}},
		{"verbose", true, []string{"--verbose"}, []string{"debug line", "info line"}, []string{"warn line", "error line"}},
		{"quiet wins over verbose", true, []string{"--verbose", "--quiet"}, nil, []string{"warn line", "error line"}},
		{"subcommand, flag before it", false, []string{"--quiet", "work"}, nil, []string{"warn line", "error line"}},
		{"subcommand, flag after it", false, []string{"work", "--verbose"}, []string{"debug line", "info line"}, []string{"warn line", "error line"}},
	}
	for _, format := range []string{LogText, LogJSON} {
		for _, tc := range cases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				var out, errw bytes.Buffer
				args := append([]string{"t"}, tc.args...)
				if !tc.hook {
					// the format flag goes where the other flags go
					args = append(args[:1], append([]string{"--log-format", format}, args[1:]...)...)
				} else {
					args = append(args, "--log-format", format)
				}
				if code := Run(logApp(&out, &errw, tc.hook, nil), args, &errw); code != 0 {
					t.Fatalf("exit %d; stderr %s", code, errw.String())
				}
				check := func(stream string, text string, want []string) {
					t.Helper()
					got := messages(t, format, text)
					if strings.Join(got, "|") != strings.Join(want, "|") {
						t.Errorf("%s messages %q, want %q\n%s", stream, got, want, text)
					}
				}
				check("stdout", out.String(), tc.stdout)
				check("stderr", errw.String(), tc.stderr)
			})
		}
	}
}

// messages returns the msg of every log line of text, parsing JSON lines
// with encoding/json (each must parse, with a level and an RFC 3339 time).
func messages(t *testing.T, format, text string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		if format == LogJSON {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q is not JSON: %v", line, err)
			}
			ts, _ := rec["time"].(string)
			if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
				t.Errorf("time %q of %q: want RFC 3339 UTC", ts, line)
			}
			if rec["level"] == nil {
				t.Errorf("log line %q has no level", line)
			}
			msg, _ := rec["msg"].(string)
			out = append(out, msg)
			continue
		}
		if strings.Contains(line, "time=") {
			t.Errorf("text line %q carries a time", line)
		}
		i := strings.Index(line, `msg="`)
		if i < 0 {
			t.Fatalf("text line %q has no msg", line)
		}
		rest := line[i+5:]
		out = append(out, rest[:strings.Index(rest, `"`)])
	}
	return out
}

func TestLogFormatJSONError(t *testing.T) {
	var out, errw bytes.Buffer
	code := Run(logApp(&out, &errw, true, Fail(ExitPending, errors.New("records not aged"), "wait")), []string{"t", "--quiet", "--log-format", "json"}, &errw)
	if code != ExitPending {
		t.Fatalf("exit %d, want %d", code, ExitPending)
	}
	lines := strings.Split(strings.TrimSpace(errw.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("final error line %q is not JSON: %v", lines[len(lines)-1], err)
	}
	if last["level"] != "ERROR" || last["msg"] != "records not aged" || last["hint"] != "wait" || last["program"] != "t" {
		t.Errorf("final error record %v", last)
	}
	if out.Len() != 0 {
		t.Errorf("--quiet wrote to stdout: %q", out.String())
	}
}

func TestLogFormatEnvironment(t *testing.T) {
	t.Setenv(EnvLogFormat, "json")
	var out, errw bytes.Buffer
	if code := Run(logApp(&out, &errw, true, nil), []string{"t"}, &errw); code != 0 {
		t.Fatalf("exit %d", code)
	}
	messages(t, LogJSON, out.String()+errw.String())
	t.Setenv(EnvLogFormat, "yaml")
	errw.Reset()
	if code := Run(logApp(&out, &errw, true, nil), []string{"t"}, &errw); code != ExitUsage || !strings.Contains(errw.String(), `"yaml"`) {
		t.Fatalf("%s=yaml: exit %d, stderr %q; want %d naming the value", EnvLogFormat, code, errw.String(), ExitUsage)
	}
}

func TestBadLogFormat(t *testing.T) {
	var out, errw bytes.Buffer
	code := Run(logApp(&out, &errw, false, nil), []string{"t", "work", "--log-format", "xml"}, &errw)
	if code != ExitUsage || !strings.Contains(errw.String(), `--log-format "xml"`) {
		t.Fatalf("exit %d, stderr %q; want %d naming --log-format", code, errw.String(), ExitUsage)
	}
}

func TestUnknownCommandIsUsage(t *testing.T) {
	for _, args := range [][]string{{"t", "frobnicate"}, {"t", "group", "frobnicate"}} {
		var out, errw bytes.Buffer
		app := logApp(&out, &errw, false, nil)
		app.Commands = append(app.Commands, &cli.Command{Name: "group", Subcommands: []*cli.Command{{Name: "one", Action: func(*cli.Context) error { return nil }}}})
		code := Run(app, args, &errw)
		if code != ExitUsage || !strings.Contains(errw.String(), `unknown command "frobnicate"`) || !strings.Contains(errw.String(), "hint:") {
			t.Errorf("%q: exit %d, stderr %q; want %d (not %d, TSIG) naming the command", args, code, errw.String(), ExitUsage, ExitTSIG)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, hook := range []bool{true, false} {
		var out, errw bytes.Buffer
		if code := Run(logApp(&out, &errw, hook, nil), []string{"t", "--version"}, &errw); code != 0 {
			t.Fatalf("--version: exit %d, stderr %q", code, errw.String())
		}
		if got := out.String(); !strings.HasPrefix(got, "t ") || !strings.Contains(got, "commit ") || !strings.Contains(got, "go1.") {
			t.Errorf("--version printed %q, want \"t VERSION (commit …, goX)\"", got)
		}
	}
	Version, Commit = "1.2.3", "abc123"
	defer func() { Version, Commit = "", "" }()
	if got := VersionString(); !strings.HasPrefix(got, "1.2.3 (commit abc123, go") {
		t.Errorf("VersionString with ldflags values = %q", got)
	}
}

func TestHookHelpHasNoCommands(t *testing.T) {
	var out, errw bytes.Buffer
	if code := Run(logApp(&out, &errw, true, nil), []string{"t", "--help"}, &errw); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, bad := range []string{"COMMANDS:", "help, h", "command [command options]"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("hook --help contains %q:\n%s", bad, out.String())
		}
	}
	for _, want := range []string{"--quiet", "--verbose", "--log-format", "--version"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("hook --help does not list %s:\n%s", want, out.String())
		}
	}
}

func TestFormatTime(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	tm := time.Date(2026, 11, 29, 17, 12, 11, 900_000_000, loc)
	if got, want := FormatTime(tm), "2026-11-29T16:12:11Z"; got != want {
		t.Errorf("FormatTime = %q, want %q", got, want)
	}
	if FormatTime(time.Time{}) != "" {
		t.Errorf("FormatTime(zero) = %q, want \"\"", FormatTime(time.Time{}))
	}
	if got := When(tm, tm.Add(-90*time.Second)); got != "in 1m30s (2026-11-29T16:12:11Z)" {
		t.Errorf("When = %q", got)
	}
}
