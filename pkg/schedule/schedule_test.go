package schedule_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/schedule"
)

// recorder writes a program that appends its arguments and the time it ran
// (Unix seconds with nanoseconds) to a file, one line per run.
func recorder(t *testing.T) (prog, out string) {
	t.Helper()
	dir := t.TempDir()
	prog, out = filepath.Join(dir, "record"), filepath.Join(dir, "runs")
	script := fmt.Sprintf("#!/bin/sh\necho \"$(date +%%s.%%N) $* STATE=$DANEHOOK_STATE_DIR\" >>'%s'\n", out)
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, out
}

func atq(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("atq").CombinedOutput()
	if err != nil {
		t.Fatalf("atq: %v: %s", err, out)
	}
	return string(out)
}

// TestAt schedules through the real at(1) and atd(8): the job runs the
// command with --not-before and the environment given, a second schedule
// of the same lineage replaces the first job, and the log file gets the
// output.
func TestAt(t *testing.T) {
	testenv.Atd(t)
	prog, out := recorder(t)
	log := filepath.Join(t.TempDir(), "tick.log")
	a := schedule.At{LogFile: log}
	// Far enough ahead that the first job cannot have run before it is
	// replaced.
	first, err := a.Schedule(t.Context(), "mail", time.Now().Add(30*time.Minute), []string{prog, "tick"}, nil, nil)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	t.Cleanup(func() { exec.Command("atrm", first.ID).Run() })
	if first.Via != schedule.ViaAt || first.ID == "" || !strings.Contains(first.Command, "--not-before") {
		t.Fatalf("entry %+v", first)
	}
	if !regexp.MustCompile(`(?m)^` + first.ID + `\s`).MatchString(atq(t)) {
		t.Fatalf("atq does not list job %s:\n%s", first.ID, atq(t))
	}
	due := time.Now().Add(2 * time.Second)
	second, err := a.Schedule(t.Context(), "mail", due, []string{prog, "tick", "--config", "/etc/dane hook.toml"}, []string{"DANEHOOK_STATE_DIR=/var/lib/x y"}, first)
	if err != nil {
		t.Fatalf("Schedule again: %v", err)
	}
	t.Cleanup(func() { exec.Command("atrm", second.ID).Run() })
	if regexp.MustCompile(`(?m)^` + first.ID + `\s`).MatchString(atq(t)) {
		t.Errorf("the replaced job %s is still queued:\n%s", first.ID, atq(t))
	}
	// at keeps whole minutes: the job starts at once (its minute has come)
	// and the program is handed --not-before, which it honours itself.
	deadline := time.Now().Add(90 * time.Second)
	var line string
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(out); len(b) > 0 {
			line = strings.TrimSpace(string(b))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if line == "" {
		t.Fatalf("the at job did not run within 90 s; atq:\n%s", atq(t))
	}
	want := "tick --config /etc/dane hook.toml --not-before " + due.UTC().Format(time.RFC3339Nano) + " STATE=/var/lib/x y"
	if _, rest, _ := strings.Cut(line, " "); rest != want {
		t.Errorf("the job ran %q, want %q", rest, want)
	}
	if _, err := os.Stat(log); err != nil {
		t.Errorf("the job's log file: %v", err)
	}
	if strings.Count(readFile(t, out), "\n") != 1 {
		t.Errorf("runs:\n%s\nwant exactly one (the replaced job must not run)", readFile(t, out))
	}
}

func readFile(t *testing.T, p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func TestSystemdArgs(t *testing.T) {
	at := time.Date(2026, 12, 1, 13, 20, 4, 300e6, time.FixedZone("CET", 3600)) // rounded up to :05
	got := schedule.Systemd{}.Args("mail.example.org", at, []string{"/usr/bin/danectl", "tick", "--config", "/etc/danehook/danehook.toml"}, []string{"DANEHOOK_STATE_DIR=/srv/s"})
	want := []string{"systemd-run", "--unit=danehook-complete-mail.example.org", "--description=danehook: complete mail.example.org once safe",
		"--on-calendar=2026-12-01 12:20:05 UTC", "--timer-property=AccuracySec=1s", "--collect", "--quiet",
		"--setenv=DANEHOOK_STATE_DIR=/srv/s", "--", "/usr/bin/danectl", "tick", "--config", "/etc/danehook/danehook.toml"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Args:\n got %q\nwant %q", got, want)
	}
	if u := schedule.UnitName("mx 1/ü"); u != "danehook-complete-mx_1__" {
		t.Errorf("UnitName = %q", u)
	}
}

// TestSystemdSchedule runs Schedule with a command runner that records the
// commands: the old timer is stopped before the new one is made, and a
// failing systemd-run is an error naming it and its output.
func TestSystemdSchedule(t *testing.T) {
	var ran [][]string
	fail := false
	s := schedule.Systemd{Run: func(_ context.Context, argv []string) ([]byte, error) {
		ran = append(ran, argv)
		if fail && argv[0] == "systemd-run" {
			return []byte("Failed to start transient timer unit: Unit danehook-complete-mail.timer already exists."), fmt.Errorf("exit status 1")
		}
		return nil, nil
	}}
	e, err := s.Schedule(t.Context(), "mail", time.Now().Add(time.Minute), []string{"/usr/bin/danectl", "tick"}, nil, nil)
	if err != nil || e.ID != "danehook-complete-mail.timer" {
		t.Fatalf("Schedule: %+v %v", e, err)
	}
	if len(ran) != 3 || ran[0][1] != "stop" || ran[2][0] != "systemd-run" {
		t.Errorf("commands %q: want systemctl stop, reset-failed, then systemd-run", ran)
	}
	fail = true
	if _, err := s.Schedule(t.Context(), "mail", time.Now().Add(time.Minute), []string{"/usr/bin/danectl", "tick"}, nil, nil); err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "systemd-run") {
		t.Errorf("failing systemd-run: %v", err)
	}
}

func TestDetect(t *testing.T) {
	if _, err := schedule.Detect("cron"); err == nil || !strings.Contains(err.Error(), `"cron"`) {
		t.Errorf("Detect(cron) = %v, want an error naming the value", err)
	}
	if s, err := schedule.Detect("none"); err != nil || s.Via() != schedule.ViaNone {
		t.Errorf("Detect(none) = %v %v", s, err)
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		if _, err := schedule.Detect("systemd"); err == nil || !strings.Contains(err.Error(), "systemd is not the running init") {
			t.Errorf("Detect(systemd) without systemd = %v", err)
		}
		if _, err := exec.LookPath("at"); err == nil {
			if s, _ := schedule.Detect("auto"); s.Via() != schedule.ViaAt {
				t.Errorf("Detect(auto) without systemd, with at = %s", s.Via())
			}
		}
	}
}
