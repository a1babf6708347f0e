package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/schedule"
	"github.com/urfave/cli/v2"
)

// defaultTimerUnit is the systemd timer the package ships (packaging/systemd).
const defaultTimerUnit = "danehook.timer"

// timerFlag is --timer-unit of status and check.
var timerFlag = &cli.StringFlag{
	Name:  "timer-unit",
	Value: defaultTimerUnit,
	Usage: "systemd `UNIT` that runs 'danectl tick'; a pending switch while it is not enabled is a warning (\"\" when tick runs from cron)",
}

// The states timerState reports.
const (
	timerEnabled  = "enabled"
	timerDisabled = "disabled"
	timerUnknown  = "unknown"
)

// probeTimer tells whether unit is enabled: "enabled", "disabled" or
// "unknown", with systemctl's own word ("masked", "not-found", …) or the
// reason it could not ask. Tests replace it; the real probe is
// systemctlIsEnabled.
var probeTimer = systemctlIsEnabled

// systemctlIsEnabled runs `systemctl is-enabled UNIT` where systemd is the
// init system: sd_booted(3) tests for the directory /run/systemd/system.
// systemctl(1): is-enabled exits 0 when the unit file is enabled (printing
// "enabled", "enabled-runtime", "static", "alias", "indirect", "generated"
// or "transient") and non-zero otherwise ("disabled", "masked", "linked",
// "not-found", "bad"). Without systemd, or when systemctl cannot be run or
// times out, the state is "unknown": nothing is claimed.
func systemctlIsEnabled(ctx context.Context, unit string) (state, detail string) {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return timerUnknown, "systemd is not the init system"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "is-enabled", unit).Output()
	word := strings.TrimSpace(string(out))
	var ee *exec.ExitError
	switch {
	case err == nil:
		return timerEnabled, word
	case errors.As(err, &ee) && ctx.Err() == nil && word != "":
		return timerDisabled, word
	}
	return timerUnknown, "systemctl is-enabled " + unit + ": " + err.Error()
}

// timerCheck probes unit when some lineage has a pending switch that is not
// safe yet and returns the report (nil when unit is "" or nothing is
// pending). Reason is set when the timer is not enabled: then nothing but
// the next hook run completes the switch.
func timerCheck(ctx context.Context, unit string, pending bool) *timerReport {
	if unit == "" || !pending {
		return nil
	}
	state, detail := probeTimer(ctx, unit)
	tr := &timerReport{Unit: unit, State: state}
	if state == timerDisabled {
		tr.Reason = "a switch or rotation commit is pending but " + unit + " is not enabled (systemctl is-enabled: " + detail +
			"): only the next renewal's hooks would complete it; run 'systemctl enable --now " + unit + "'"
	}
	if state == timerEnabled {
		// Without an answer the packaged schedule stands in (timerWindow).
		if next, err := probeTimerNext(ctx, unit); err == nil && !next.IsZero() {
			tr.next, tr.NextElapse = next, rfc3339(next)
		}
	}
	return tr
}

// probeTimerNext returns when systemd next starts unit's service (zero
// when it does not say). Tests replace it; the real probe is
// systemctlNextElapse.
var probeTimerNext = systemctlNextElapse

// runSystemctl runs systemctl with argv and env added to its environment
// and returns its standard output. Tests replace it.
var runSystemctl = func(ctx context.Context, env, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "systemctl", argv...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.Output()
}

// systemctlNextElapse asks systemd when the timer unit elapses next:
// `systemctl show UNIT -p NextElapseUSecRealtime --value` with TZ=UTC.
// NextElapseUSecRealtime is the D-Bus property of the timer's next
// realtime (OnCalendar=) elapse, with its RandomizedDelaySec= delay
// already added (systemd src/core/timer.c, timer_enter_waiting: add_random
// on next_elapse_realtime); systemctl prints it as a timestamp in the local
// time zone, "Tue 2026-12-01 14:07:12 UTC" under TZ=UTC (systemd.time(7),
// "Displaying Timestamps"). An empty value or "n/a" (the timer is not
// waiting) is the zero time. Errors: systemctl failed or timed out (5 s),
// or printed something else.
func systemctlNextElapse(ctx context.Context, unit string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := runSystemctl(ctx, []string{"TZ=UTC"}, []string{"show", unit, "-p", "NextElapseUSecRealtime", "--value"})
	if err != nil {
		return time.Time{}, fmt.Errorf("systemctl show %s -p NextElapseUSecRealtime: %w", unit, err)
	}
	return parseSystemdTimestamp(strings.TrimSpace(string(out)))
}

// parseSystemdTimestamp parses a timestamp as systemctl prints it under
// TZ=UTC ("Tue 2026-12-01 14:07:12 UTC", optionally with microseconds
// after the seconds); "" and "n/a" are the zero time. A zone other than
// UTC is an error: Go cannot tell what an abbreviation means.
func parseSystemdTimestamp(v string) (time.Time, error) {
	if v == "" || v == "n/a" {
		return time.Time{}, nil
	}
	t, err := time.Parse("Mon 2006-01-02 15:04:05.999999 MST", v)
	if err != nil || t.Location() != time.UTC {
		return time.Time{}, fmt.Errorf("systemctl printed %q for NextElapseUSecRealtime: want a time like \"Tue 2026-12-01 14:07:12 UTC\"", v)
	}
	return t, nil
}

// The schedule of the packaged danehook.timer (packaging/systemd/
// danehook.timer; TestPackagedTimerSchedule fails when the unit changes
// and these do not).
const (
	// packagedOnCalendar is its OnCalendar=: "hourly" is *-*-* *:00:00
	// (systemd.time(7)), in the system's local time.
	packagedOnCalendar = "hourly"
	// packagedRandomizedDelay is its RandomizedDelaySec=: each elapse is
	// delayed by a random time between 0 and this, chosen anew each time
	// (no FixedRandomDelay=) (systemd.timer(5)).
	packagedRandomizedDelay = 15 * time.Minute
	// timerAccuracy is systemd's default AccuracySec= (1min), which the
	// unit keeps: the service may start up to that much after the elapse
	// (systemd.timer(5)).
	timerAccuracy = time.Minute
)

// packagedSchedule describes the packaged schedule for people.
var packagedSchedule = fmt.Sprintf("OnCalendar=%s, RandomizedDelaySec=%s, AccuracySec=%s", packagedOnCalendar, sdSpan(packagedRandomizedDelay), sdSpan(timerAccuracy))

// sdSpan writes whole minutes as systemd does ("15min").
func sdSpan(d time.Duration) string { return fmt.Sprintf("%dmin", int(d/time.Minute)) }

// timerWindow returns when the first run of the timer tr probed comes at
// or after after (no earlier than now): between from and to. With
// systemd's next elapse (tr.NextElapse) at or after that time, it is that
// elapse (to adds timerAccuracy) and source is "systemd"; else it is
// computed from the packaged schedule ("packaged"): the first local hour
// boundary H at or after after, to H + RandomizedDelaySec + AccuracySec —
// from is after itself when the previous hour's run, delayed at random,
// may still come after it (unless systemd said that run comes before). ok is false when no timer runs danectl tick as
// far as danectl knows (tr nil: --timer-unit ""; or the unit is not
// enabled).
func timerWindow(tr *timerReport, after, now time.Time) (from, to time.Time, source string, ok bool) {
	if tr == nil || tr.Unit == "" || tr.State == timerDisabled {
		return time.Time{}, time.Time{}, "", false
	}
	if after.Before(now) {
		after = now
	}
	if !tr.next.IsZero() && !tr.next.Before(after) {
		return tr.next, tr.next.Add(timerAccuracy), timerSourceSystemd, true
	}
	span := packagedRandomizedDelay + timerAccuracy
	l := after.In(time.Local)
	hour := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, time.Local)
	switch since := after.Sub(hour); {
	case since == 0:
		return hour, hour.Add(span), timerSourcePackaged, true
	case since < span && (tr.next.IsZero() || tr.next.Before(hour)):
		return after, hour.Add(time.Hour + span), timerSourcePackaged, true
	}
	return hour.Add(time.Hour), hour.Add(time.Hour + span), timerSourcePackaged, true
}

// The sources of a timer window (timerRunReport.Source).
const (
	timerSourceSystemd  = "systemd"
	timerSourcePackaged = "packaged"
)

// needsTimer reports whether some lineage of st waits for a run that no
// scheduled job covers: a pending switch, or a rotation commit scheduled
// "none" or whose scheduling failed (status then tells when the timer
// runs).
func needsTimer(st *deploy.Status) bool {
	for _, l := range st.Lineages {
		if (l.Pending != nil || l.Scheduled != nil) && (l.Scheduled == nil || l.Scheduled.Via == schedule.ViaNone) {
			return true
		}
	}
	return pendingSwitch(st)
}

// pendingSwitch reports whether some lineage of st has a switch pending
// that is not safe yet (one that only a later run can complete).
func pendingSwitch(st *deploy.Status) bool {
	for _, l := range st.Lineages {
		if l.Pending != nil && (l.Switch == nil || !l.Switch.Safe) {
			return true
		}
	}
	return false
}
