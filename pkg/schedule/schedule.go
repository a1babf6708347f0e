// Package schedule arranges the run that completes a pending switch, or
// (with rotate_every) commits a staged rotation, at the moment it becomes
// safe, instead of at the next tick of the hourly timer (issue 15: the
// physical floor of a switch is the last authoritative server's first
// sighting of the record plus 2 × the TTL caches may hold; a timer period
// on top of it is waste). A removal is never scheduled on its own: the run
// that switches removes the records no chain needs once it has verified
// the switch (pkg/deploy, schedule.go).
//
// Three ways, picked by Detect in this order:
//
//   - systemd: a transient timer (systemd-run(1) --on-calendar with
//     AccuracySec=1s), one unit per lineage ("danehook-complete-NAME"), so
//     that a rerun replaces it (systemctl stop of the old timer first);
//   - at: an at(1) job (-M, no mail). at keeps whole minutes (its queue
//     names jobs by minute), so the job is queued for the minute that holds
//     the time and the command sleeps the remaining seconds itself
//     (`danectl tick --not-before TIME`); the job number is kept so a rerun
//     removes the earlier job with atrm(1);
//   - none: nothing is scheduled; the timer completes the work, and status
//     says so.
//
// A scheduled run re-observes everything before it acts: a run that comes
// early or late, or twice, is harmless.
package schedule

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// The ways a run can be scheduled (Entry.Via, config [schedule] via).
const (
	ViaSystemd = "systemd"
	ViaAt      = "at"
	ViaNone    = "none"
	ViaAuto    = "auto"
)

// Entry is one scheduled run, as kept in the lineage's state and shown by
// `danectl status`.
type Entry struct {
	// Via is ViaSystemd, ViaAt or ViaNone.
	Via string `json:"via"`
	// At is when the run is due (UTC).
	At time.Time `json:"at"`
	// ID names what was scheduled: the transient unit
	// ("danehook-complete-mail.timer") or the at job number; "" for none.
	ID string `json:"id,omitempty"`
	// Command is the command line that runs then, for status.
	Command string `json:"command,omitempty"`
	// What says what the run is expected to do ("switch to 3 1 1 …").
	What string `json:"what,omitempty"`
}

// Scheduler schedules a run of argv at a time.
type Scheduler interface {
	// Via names the way (ViaSystemd, ViaAt, ViaNone).
	Via() string
	// Schedule arranges for argv (an absolute program path and its
	// arguments) to run at, or just after, at, with env (KEY=VALUE)
	// added to its environment. name is the lineage: an earlier entry of
	// the same name (prev, may be nil) is replaced. Errors name the
	// command that failed and what it printed.
	Schedule(ctx context.Context, name string, at time.Time, argv, env []string, prev *Entry) (*Entry, error)
}

// Detect returns the scheduler for via: ViaAuto picks systemd when systemd
// is the running init (/run/systemd/system exists, sd_booted(3)) and
// systemd-run is installed, else at when at(1) is installed, else none.
// An explicit via that cannot work here is an error naming what is missing.
func Detect(via string) (Scheduler, error) {
	systemd := func() error {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			return fmt.Errorf("systemd is not the running init (no /run/systemd/system)")
		}
		if _, err := exec.LookPath("systemd-run"); err != nil {
			return fmt.Errorf("systemd-run is not installed")
		}
		return nil
	}
	at := func() error {
		if _, err := exec.LookPath("at"); err != nil {
			return fmt.Errorf("at is not installed (Debian package at)")
		}
		return nil
	}
	switch via {
	case "", ViaAuto:
		if systemd() == nil {
			return Systemd{}, nil
		}
		if at() == nil {
			return At{}, nil
		}
		return None{}, nil
	case ViaSystemd:
		if err := systemd(); err != nil {
			return nil, fmt.Errorf("[schedule] via = %q: %w", via, err)
		}
		return Systemd{}, nil
	case ViaAt:
		if err := at(); err != nil {
			return nil, fmt.Errorf("[schedule] via = %q: %w", via, err)
		}
		return At{}, nil
	case ViaNone:
		return None{}, nil
	}
	return nil, fmt.Errorf("[schedule] via = %q: want %q, %q, %q or %q", via, ViaAuto, ViaSystemd, ViaAt, ViaNone)
}

// None schedules nothing: the timer completes the work.
type None struct{}

// Via is ViaNone.
func (None) Via() string { return ViaNone }

// Schedule returns an Entry saying nothing was scheduled.
func (None) Schedule(_ context.Context, _ string, at time.Time, argv, _ []string, _ *Entry) (*Entry, error) {
	return &Entry{Via: ViaNone, At: at.UTC()}, nil
}

// unitChars are the characters kept in a unit name; others become '_'.
var unitChars = regexp.MustCompile(`[^A-Za-z0-9:_.-]`)

// UnitName is the transient unit of lineage name: "danehook-complete-NAME"
// (characters outside systemd's unit-name set replaced by '_').
func UnitName(name string) string {
	return "danehook-complete-" + unitChars.ReplaceAllString(name, "_")
}

// Systemd schedules with a transient timer (systemd-run(1)).
type Systemd struct {
	// Run runs a command and returns its combined output; nil runs it.
	Run func(ctx context.Context, argv []string) ([]byte, error)
}

// Via is ViaSystemd.
func (Systemd) Via() string { return ViaSystemd }

// Args returns the systemd-run command line for one run (see Schedule).
func (Systemd) Args(name string, at time.Time, argv, env []string) []string {
	unit := UnitName(name)
	// The calendar is given in whole seconds: round up, never early.
	if t := at.Truncate(time.Second); t.Before(at) {
		at = t.Add(time.Second)
	}
	args := []string{"systemd-run", "--unit=" + unit, "--description=danehook: complete " + name + " once safe",
		"--on-calendar=" + at.UTC().Format("2006-01-02 15:04:05") + " UTC",
		"--timer-property=AccuracySec=1s", "--collect", "--quiet"}
	for _, kv := range env {
		args = append(args, "--setenv="+kv)
	}
	return append(append(args, "--"), argv...)
}

// Schedule stops the lineage's earlier timer (a transient unit of that name
// cannot be created twice), then creates the timer with systemd-run.
func (s Systemd) Schedule(ctx context.Context, name string, at time.Time, argv, env []string, _ *Entry) (*Entry, error) {
	unit := UnitName(name)
	run := s.Run
	if run == nil {
		run = combined
	}
	// Both may fail when there is nothing to stop: that is fine.
	run(ctx, []string{"systemctl", "stop", unit + ".timer"})
	run(ctx, []string{"systemctl", "reset-failed", unit + ".timer", unit + ".service"})
	args := s.Args(name, at, argv, env)
	if out, err := run(ctx, args); err != nil {
		return nil, fmt.Errorf("schedule the completing run: %s: %v: %s", strings.Join(args[:4], " "), err, strings.TrimSpace(string(out)))
	}
	return &Entry{Via: ViaSystemd, At: at.UTC(), ID: unit + ".timer", Command: strings.Join(argv, " ")}, nil
}

// At schedules with at(1).
type At struct {
	// LogFile, when set, receives the job's output (appended); at -M
	// otherwise discards it.
	LogFile string
}

// Via is ViaAt.
func (At) Via() string { return ViaAt }

// atJob matches at's "job 12 at Tue Dec  1 13:08:00 2026" line.
var atJob = regexp.MustCompile(`(?m)^job (\d+) at `)

// Schedule removes the lineage's earlier job (prev.ID, with atrm), then
// queues the job for the minute holding at (`at -M -t CCYYMMDDhhmm`, UTC);
// the job's command line is argv followed by --not-before TIME (RFC 3339
// with the fraction of a second),
// so that it waits the remaining seconds. env is exported in the job
// (at itself keeps the caller's environment too).
func (a At) Schedule(ctx context.Context, name string, at time.Time, argv, env []string, prev *Entry) (*Entry, error) {
	if prev != nil && prev.Via == ViaAt && prev.ID != "" {
		exec.CommandContext(ctx, "atrm", prev.ID).Run() // gone already: fine
	}
	at = at.UTC()
	cmdline := shellJoin(append(append([]string(nil), argv...), "--not-before", at.Format(time.RFC3339Nano)))
	var script strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&script, "%s=%s; export %s\n", k, shellQuote(v), k)
	}
	if a.LogFile != "" {
		fmt.Fprintf(&script, "exec %s >>%s 2>&1\n", cmdline, shellQuote(a.LogFile))
	} else {
		fmt.Fprintf(&script, "exec %s\n", cmdline)
	}
	cmd := exec.CommandContext(ctx, "at", "-M", "-t", at.Format("200601021504"))
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin = strings.NewReader(script.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("schedule the completing run: at -M -t %s: %v: %s", at.Format("200601021504"), err, strings.TrimSpace(out.String()))
	}
	m := atJob.FindStringSubmatch(out.String())
	if m == nil {
		return nil, fmt.Errorf("schedule the completing run: at printed no job number: %s", strings.TrimSpace(out.String()))
	}
	return &Entry{Via: ViaAt, At: at, ID: m[1], Command: cmdline}, nil
}

func combined(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

// shellQuote quotes s for sh(1) in single quotes.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '-' || r == '_' || r == '.' || r == ':' || r == '=' || r == '+' || r == ',' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// Failing is the scheduler of a configuration whose via cannot work on this
// machine (Detect's error): every Schedule returns Err, which the engine
// keeps in the lineage's state for status, and the timer completes the
// work.
type Failing struct{ Err error }

// Via is ViaNone: nothing gets scheduled.
func (Failing) Via() string { return ViaNone }

// Schedule returns f.Err.
func (f Failing) Schedule(context.Context, string, time.Time, []string, []string, *Entry) (*Entry, error) {
	return nil, f.Err
}
