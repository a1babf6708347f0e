package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/schedule"
)

// TestPackagedTimerSchedule: the schedule status computes the timer's
// window from is the packaged unit's (packaging/systemd/danehook.timer).
func TestPackagedTimerSchedule(t *testing.T) {
	f, err := os.Open("../../packaging/systemd/danehook.timer")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Timer]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = v
		}
	}
	if keys["OnCalendar"] != packagedOnCalendar {
		t.Errorf("danehook.timer OnCalendar=%q; status computes with %q", keys["OnCalendar"], packagedOnCalendar)
	}
	if got := systemdSpan(t, keys["RandomizedDelaySec"]); got != packagedRandomizedDelay {
		t.Errorf("danehook.timer RandomizedDelaySec=%q (%v); status computes with %v", keys["RandomizedDelaySec"], got, packagedRandomizedDelay)
	}
	if v, ok := keys["AccuracySec"]; ok && systemdSpan(t, v) != timerAccuracy {
		t.Errorf("danehook.timer AccuracySec=%q; status computes with systemd's default %v", v, timerAccuracy)
	}
	if _, ok := keys["FixedRandomDelay"]; ok {
		t.Errorf("danehook.timer sets FixedRandomDelay=: status assumes a new random delay each elapse")
	}
	if want := "OnCalendar=hourly, RandomizedDelaySec=15min, AccuracySec=1min"; packagedSchedule != want {
		t.Errorf("packagedSchedule = %q, want %q", packagedSchedule, want)
	}
}

// systemdSpan parses the few time spans the unit uses ("15min", "1h",
// "30s"; systemd.time(7)).
func systemdSpan(t *testing.T, v string) time.Duration {
	t.Helper()
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"min", time.Minute}, {"h", time.Hour}, {"s", time.Second}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			if i, err := strconv.Atoi(n); err == nil {
				return time.Duration(i) * u.unit
			}
		}
	}
	t.Fatalf("time span %q: not understood", v)
	return 0
}

// fakeSystemctl replaces runSystemctl: it records each call and answers
// out, err.
func fakeSystemctl(t *testing.T, out string, err error) *[][]string {
	t.Helper()
	old := runSystemctl
	t.Cleanup(func() { runSystemctl = old })
	var calls [][]string
	runSystemctl = func(_ context.Context, env, argv []string) ([]byte, error) {
		calls = append(calls, append(slices.Clone(env), argv...))
		return []byte(out), err
	}
	return &calls
}

// TestSystemctlNextElapse: the systemd path of the timer's time, with a
// fake systemctl (this machine has no systemd): what it asks, how it
// reads systemctl's timestamps, and what it refuses.
func TestSystemctlNextElapse(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		err       error
		want      time.Time
		wantErr   string
	}{
		{name: "timestamp", out: "Tue 2026-12-01 13:07:12 UTC\n", want: time.Date(2026, 12, 1, 13, 7, 12, 0, time.UTC)},
		{name: "microseconds", out: "Tue 2026-12-01 13:07:12.250000 UTC\n", want: time.Date(2026, 12, 1, 13, 7, 12, 250e6, time.UTC)},
		{name: "not waiting (empty)", out: "\n"},
		{name: "not waiting (n/a)", out: "n/a\n"},
		{name: "another zone", out: "Tue 2026-12-01 14:07:12 CET\n", wantErr: `printed "Tue 2026-12-01 14:07:12 CET"`},
		{name: "garbage", out: "2026-12-01T13:07:12Z\n", wantErr: "want a time like"},
		{name: "systemctl fails", err: errors.New("exit status 1"), wantErr: "systemctl show danehook.timer -p NextElapseUSecRealtime: exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := fakeSystemctl(t, tc.out, tc.err)
			got, err := systemctlNextElapse(t.Context(), defaultTimerUnit)
			if want := []string{"TZ=UTC", "show", "danehook.timer", "-p", "NextElapseUSecRealtime", "--value"}; len(*calls) != 1 || !slices.Equal((*calls)[0], want) {
				t.Errorf("systemctl calls %q, want one: %q", *calls, want)
			}
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !got.IsZero() {
					t.Errorf("got %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
			case err != nil || !got.Equal(tc.want):
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestTimerCheckNextElapse: an enabled timer is asked for its next
// elapse (fake systemctl), a disabled one is not; a failed answer leaves
// it out.
func TestTimerCheckNextElapse(t *testing.T) {
	oldProbe := probeTimer
	defer func() { probeTimer = oldProbe }()
	probeTimer = func(context.Context, string) (string, string) { return timerEnabled, "enabled" }
	calls := fakeSystemctl(t, "Tue 2026-12-01 12:20:00 UTC\n", nil)
	tr := timerCheck(t.Context(), defaultTimerUnit, true)
	if tr == nil || tr.NextElapse != "2026-12-01T12:20:00Z" || !tr.next.Equal(mNow.Add(20*time.Minute)) {
		t.Errorf("enabled timer: %+v, want next_elapse 2026-12-01T12:20:00Z", tr)
	}
	probeTimer = func(context.Context, string) (string, string) { return timerDisabled, "disabled" }
	if tr := timerCheck(t.Context(), defaultTimerUnit, true); tr == nil || tr.NextElapse != "" || len(*calls) != 1 {
		t.Errorf("disabled timer: %+v after %d systemctl show calls; want no next elapse and no new call", tr, len(*calls))
	}
	probeTimer = func(context.Context, string) (string, string) { return timerEnabled, "enabled" }
	fakeSystemctl(t, "", errors.New("exit status 1"))
	if tr := timerCheck(t.Context(), defaultTimerUnit, true); tr == nil || tr.NextElapse != "" || !tr.next.IsZero() {
		t.Errorf("systemctl show failed: %+v, want no next elapse", tr)
	}
}

// TestTimerWindow: the run of the timer that comes first at or after a
// time, from systemd's next elapse or the packaged schedule, in the
// system's local time.
func TestTimerWindow(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	at := func(hm string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04:05", "2026-12-01 "+hm)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	enabled := &timerReport{Unit: defaultTimerUnit, State: timerEnabled}
	withNext := func(hm string) *timerReport {
		return &timerReport{Unit: defaultTimerUnit, State: timerEnabled, next: at(hm), NextElapse: rfc3339(at(hm))}
	}
	for _, tc := range []struct {
		name          string
		local         *time.Location
		tr            *timerReport
		after         time.Time
		from, to, src string
		none          bool
	}{
		{name: "packaged, safe at 12:40: the 13:00 run", tr: enabled, after: at("12:40:00"), from: "13:00:00", to: "13:16:00", src: timerSourcePackaged},
		{name: "packaged, safe on the hour", tr: enabled, after: at("13:00:00"), from: "13:00:00", to: "13:16:00", src: timerSourcePackaged},
		{name: "packaged, safe at 13:05: the 13:00 run's delay may still come after", tr: enabled, after: at("13:05:00"), from: "13:05:00", to: "14:16:00", src: timerSourcePackaged},
		{name: "packaged, safe at 13:16: past the 13:00 run's window", tr: enabled, after: at("13:16:00"), from: "14:00:00", to: "14:16:00", src: timerSourcePackaged},
		{name: "systemd's next elapse after safe_at", tr: withNext("13:07:12"), after: at("12:40:00"), from: "13:07:12", to: "13:08:12", src: timerSourceSystemd},
		{name: "systemd's next elapse before safe_at, same hour: the next hour", tr: withNext("13:03:00"), after: at("13:05:00"), from: "14:00:00", to: "14:16:00", src: timerSourcePackaged},
		{name: "systemd's next elapse before safe_at, earlier hour", tr: withNext("12:10:00"), after: at("13:05:00"), from: "13:05:00", to: "14:16:00", src: timerSourcePackaged},
		{name: "state unknown: the packaged schedule", tr: &timerReport{Unit: defaultTimerUnit, State: timerUnknown}, after: at("12:40:00"), from: "13:00:00", to: "13:16:00", src: timerSourcePackaged},
		{name: "India: hours on the half hour in UTC", local: time.FixedZone("IST", 5*3600+1800), tr: enabled, after: at("12:50:00"), from: "13:30:00", to: "13:46:00", src: timerSourcePackaged},
		{name: "disabled", tr: &timerReport{Unit: defaultTimerUnit, State: timerDisabled}, after: at("12:40:00"), none: true},
		{name: "no unit", tr: nil, after: at("12:40:00"), none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			time.Local = time.UTC
			if tc.local != nil {
				time.Local = tc.local
			}
			from, to, src, ok := timerWindow(tc.tr, tc.after, at("12:00:00"))
			if tc.none {
				if ok {
					t.Errorf("got %v–%v (%s); want no timer run", from, to, src)
				}
				return
			}
			if !ok || !from.Equal(at(tc.from)) || !to.Equal(at(tc.to)) || src != tc.src {
				t.Errorf("got %v–%v (%s, %v); want %s–%s (%s)", from.UTC(), to.UTC(), src, ok, tc.from, tc.to, tc.src)
			}
		})
	}
	// A time already past counts from now.
	time.Local = time.UTC
	if from, _, _, _ := timerWindow(enabled, at("11:00:00"), at("12:40:00")); !from.Equal(at("13:00:00")) {
		t.Errorf("safe at 11:00, now 12:40: from %v, want 13:00", from)
	}
}

// statusOut renders st as text and as --json, and decodes the JSON into
// the documented schema (unknown fields refused).
func statusOut(t *testing.T, st *deploy.Status, tr *timerReport) (string, documentedStatus) {
	t.Helper()
	var b bytes.Buffer
	writeStatus(&b, st, mNow, tr)
	var j bytes.Buffer
	if err := writeJSON(&j, newStatusReport(st, mNow, tr)); err != nil {
		t.Fatal(err)
	}
	var doc documentedStatus
	decodeStrict(t, j.Bytes(), &doc)
	checkTimes(t, j.Bytes())
	return b.String(), doc
}

// TestStatusPendingSwitchCompletes: the PENDING SWITCH line (safe_at) and
// the completes line of a pending switch, for each way it completes, and
// the --json scheduled, schedule_error and timer_completes values.
func TestStatusPendingSwitchCompletes(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	// 12:10: within the 12:00 run's random delay, so the packaged window
	// runs from safe_at to the end of the 13:00 run's.
	safeAt := mNow.Add(10 * time.Minute)
	const tick = "/usr/bin/danectl tick --config /etc/danehook/danehook.toml"
	// The systemd entry as schedule.Systemd makes it, with a fake
	// systemd-run (no systemd here).
	var ran [][]string
	sd := schedule.Systemd{Run: func(_ context.Context, argv []string) ([]byte, error) {
		ran = append(ran, argv)
		return nil, nil
	}}
	sdEntry, err := sd.Schedule(t.Context(), "mail", safeAt, strings.Fields(tick), nil, nil)
	if err != nil || len(ran) != 3 || ran[2][0] != "systemd-run" {
		t.Fatalf("fake systemd-run: %+v, %v, calls %q", sdEntry, err, ran)
	}
	sdEntry.What = "switch to 3 1 1 " + spkiB
	const atErr = "schedule the completing run: at -M -t 202612011210: exit status 1: Can't open /var/run/atd.pid to signal atd. No atd running?"
	enabled := &timerReport{Unit: defaultTimerUnit, State: timerEnabled}
	systemdNext := &timerReport{Unit: defaultTimerUnit, State: timerEnabled, next: mNow.Add(20 * time.Minute), NextElapse: "2026-12-01T12:20:00Z"}
	const pendingLine = "  PENDING SWITCH to key 3 1 1 " + spkiB + " since 2026-12-01T11:57:00Z: safe in 10m0s (2026-12-01T12:10:00Z)\n"
	const noRun = `no run scheduled: [schedule] via = "none", no systemd or at here, or the time is not known yet`
	for _, tc := range []struct {
		name      string
		scheduled *schedule.Entry
		schedErr  string
		tr        *timerReport
		safeAt    time.Time
		completes string
		// JSON
		via, id, jsonErr string
		timer            []string // unit, earliest, latest, source; nil: omitted
	}{
		{name: "at job", tr: enabled, safeAt: safeAt,
			scheduled: &schedule.Entry{Via: schedule.ViaAt, At: safeAt, ID: "12", Command: tick + " --not-before 2026-12-01T12:10:00Z", What: "switch to 3 1 1 " + spkiB},
			completes: "at job 12 at 2026-12-01T12:10:00Z (switch to 3 1 1 " + spkiB + "): " + tick + " --not-before 2026-12-01T12:10:00Z",
			via:       "at", id: "12"},
		{name: "systemd timer", tr: enabled, safeAt: safeAt, scheduled: sdEntry,
			completes: "systemd danehook-complete-mail.timer at 2026-12-01T12:10:00Z (switch to 3 1 1 " + spkiB + "): " + tick,
			via:       "systemd", id: "danehook-complete-mail.timer"},
		{name: "schedule error, packaged timer", tr: enabled, safeAt: safeAt, schedErr: atErr,
			completes: "danehook.timer's first 'danectl tick' after safe_at, between 2026-12-01T12:10:00Z and 2026-12-01T13:16:00Z (its packaged schedule: OnCalendar=hourly, RandomizedDelaySec=15min, AccuracySec=1min; scheduling a run failed: " + atErr + ")",
			jsonErr:   atErr, timer: []string{defaultTimerUnit, "2026-12-01T12:10:00Z", "2026-12-01T13:16:00Z", "packaged"}},
		{name: "none, systemd's next elapse", tr: systemdNext, safeAt: safeAt,
			scheduled: &schedule.Entry{Via: schedule.ViaNone, At: safeAt},
			completes: "danehook.timer's first 'danectl tick' after safe_at, at 2026-12-01T12:20:00Z (systemd's next elapse of the timer; " + noRun + ")",
			via:       "none", timer: []string{defaultTimerUnit, "2026-12-01T12:20:00Z", "2026-12-01T12:21:00Z", "systemd"}},
		{name: "none, packaged timer", tr: enabled, safeAt: safeAt,
			scheduled: &schedule.Entry{Via: schedule.ViaNone, At: safeAt},
			completes: "danehook.timer's first 'danectl tick' after safe_at, between 2026-12-01T12:10:00Z and 2026-12-01T13:16:00Z (its packaged schedule: OnCalendar=hourly, RandomizedDelaySec=15min, AccuracySec=1min; " + noRun + ")",
			via:       "none", timer: []string{defaultTimerUnit, "2026-12-01T12:10:00Z", "2026-12-01T13:16:00Z", "packaged"}},
		{name: "none, timer state unknown", tr: &timerReport{Unit: defaultTimerUnit, State: timerUnknown}, safeAt: safeAt,
			completes: "danehook.timer's first 'danectl tick' after safe_at, between 2026-12-01T12:10:00Z and 2026-12-01T13:16:00Z (its packaged schedule: OnCalendar=hourly, RandomizedDelaySec=15min, AccuracySec=1min; systemd could not tell whether it is enabled; " + noRun + ")",
			timer:     []string{defaultTimerUnit, "2026-12-01T12:10:00Z", "2026-12-01T13:16:00Z", "packaged"}},
		{name: "none, timer disabled", tr: &timerReport{Unit: defaultTimerUnit, State: timerDisabled, Reason: "not enabled"}, safeAt: safeAt,
			completes: "only the next renewal's hooks: danehook.timer is not enabled (" + noRun + ")"},
		{name: "none, no timer unit (cron)", tr: nil, safeAt: safeAt,
			completes: `the next 'danectl tick' (from cron, or the next hook run: no timer unit is known, --timer-unit ""; ` + noRun + ")"},
		{name: "blocked: the timer only re-checks", tr: enabled, safeAt: time.Time{},
			completes: "danehook.timer's next 'danectl tick', between 2026-12-01T12:00:00Z and 2026-12-01T12:16:00Z (its packaged schedule: OnCalendar=hourly, RandomizedDelaySec=15min, AccuracySec=1min; it only re-checks: when the switch becomes safe is not known while a server blocks it; " + noRun + ")",
			timer:     []string{defaultTimerUnit, "2026-12-01T12:00:00Z", "2026-12-01T12:16:00Z", "packaged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthy(t)
			pend(st, 3*time.Minute, tc.safeAt)
			l := &st.Lineages[0]
			l.Scheduled, l.ScheduleErr = tc.scheduled, tc.schedErr
			out, doc := statusOut(t, st, tc.tr)
			wantPending := pendingLine
			if tc.safeAt.IsZero() {
				wantPending = "  PENDING SWITCH to key 3 1 1 " + spkiB + " since 2026-12-01T11:57:00Z: safe unknown (a server blocks it)\n"
			}
			if !strings.Contains(out, wantPending) {
				t.Errorf("status lacks %q:\n%s", wantPending, out)
			}
			if want := "  completes   "; !strings.Contains(out, want+tc.completes+"\n") {
				_, got, _ := strings.Cut(out, want)
				got, _, _ = strings.Cut(got, "\n")
				t.Errorf("completes line:\n got %s\nwant …%s", got, tc.completes)
			}
			lj := doc.Lineages[0]
			if lj.Pending == nil || lj.Pending.SafeAt != rfc3339(tc.safeAt) || lj.Pending.Safe {
				t.Errorf("--json pending = %+v, want safe_at %q, not safe", lj.Pending, rfc3339(tc.safeAt))
			}
			switch {
			case tc.via == "" && lj.Scheduled != nil:
				t.Errorf("--json scheduled = %+v, want omitted", lj.Scheduled)
			case tc.via != "" && (lj.Scheduled == nil || lj.Scheduled.Via != tc.via || lj.Scheduled.ID != tc.id || lj.Scheduled.At != "2026-12-01T12:10:00Z"):
				t.Errorf("--json scheduled = %+v, want via %q, id %q at 2026-12-01T12:10:00Z", lj.Scheduled, tc.via, tc.id)
			}
			if lj.ScheduleError != tc.jsonErr {
				t.Errorf("--json schedule_error = %q, want %q", lj.ScheduleError, tc.jsonErr)
			}
			var gotTimer []string
			if r := lj.TimerCompletes; r != nil {
				gotTimer = []string{r.Unit, r.Earliest, r.Latest, r.Source}
			}
			if !slices.Equal(gotTimer, tc.timer) {
				t.Errorf("--json timer_completes = %q, want %q", gotTimer, tc.timer)
			}
		})
	}
}

// TestStatusRotationCommitTime: the ROTATION line and --json next_key of
// a staged key (rotate stage, no rotate_every: nothing scheduled) say when
// the commit becomes allowed, or that a server blocks it.
func TestStatusRotationCommitTime(t *testing.T) {
	for _, tc := range []struct {
		name              string
		agedAt, committed time.Time
		line              string
		allowed           bool
		allowedAt         string
	}{
		{name: "in the future", agedAt: mNow.Add(7 * time.Minute),
			line:      "staged, commit allowed in 7m0s (2026-12-01T12:07:00Z) ('danectl rotate commit mail' then)",
			allowedAt: "2026-12-01T12:07:00Z"},
		{name: "aged", agedAt: mNow.Add(-time.Minute),
			line:    "staged, aged since 2026-12-01T11:59:00Z: commit allowed ('danectl rotate commit mail')",
			allowed: true, allowedAt: "2026-12-01T11:59:00Z"},
		{name: "blocked", line: "staged, commit refused until aged: unknown while a server blocks it ('danectl rotate status' says which)"},
		{name: "committed", committed: mNow.Add(-time.Minute), line: "committed: the next renewal uses it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthy(t)
			l := &st.Lineages[0]
			l.Next = &deploy.NextKey{SPKI: spkiB, Algorithm: "ecdsa-p256", Staged: mNow.Add(-time.Hour), Committed: tc.committed, File: "/var/lib/danehook/next.key"}
			l.NextAgedAt = tc.agedAt
			out, doc := statusOut(t, st, nil)
			want := "  ROTATION    next key 3 1 1 " + spkiB + " (ecdsa-p256) " + tc.line + "\n"
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
			if strings.Contains(out, "completes") {
				t.Errorf("a manual rotation has nothing scheduled, yet status prints a completes line:\n%s", out)
			}
			n := doc.Lineages[0].NextKey
			if n == nil || n.CommitAllowed != tc.allowed || n.CommitAllowedAt != tc.allowedAt {
				t.Errorf("--json next_key = %+v, want commit_allowed %v, commit_allowed_at %q", n, tc.allowed, tc.allowedAt)
			}
		})
	}
}
