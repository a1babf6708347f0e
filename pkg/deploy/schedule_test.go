package deploy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/schedule"
)

// recordingScheduler records what scheduleRuns asks for.
type recordingScheduler struct {
	calls []time.Time
	err   error
}

func (r *recordingScheduler) Via() string { return schedule.ViaAt }

func (r *recordingScheduler) Schedule(_ context.Context, name string, at time.Time, argv, env []string, prev *schedule.Entry) (*schedule.Entry, error) {
	r.calls = append(r.calls, at)
	if r.err != nil {
		return nil, r.err
	}
	return &schedule.Entry{Via: schedule.ViaAt, At: at, ID: "7", Command: argv[0]}, nil
}

// TestScheduleRuns: a pending switch with a known safe time gets one run at
// that time; the same time again is not rescheduled; an entry earlier than
// the switch's safe time is replaced; an unknown time schedules nothing and
// a past entry is forgotten; a failure is kept for status, never returned.
func TestScheduleRuns(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rs := &recordingScheduler{}
	e := &Engine{Config: &config.Config{}, Now: func() time.Time { return now }, Scheduler: rs, TickCommand: []string{"/usr/bin/danectl", "tick"}}
	lv := &lineageView{L: &config.Lineage{Name: "mail"}, State: &LineageState{}, Decided: true}
	s := &snapshot{Lineages: []*lineageView{lv}, Now: now, DNS: &DNSState{}}
	safe := now.Add(10*time.Second + 300*time.Millisecond)
	lv.State.Pending = &Pending{SPKI: "ab", SafeAt: safe}

	e.scheduleRuns(s)
	if len(rs.calls) != 1 || !rs.calls[0].Equal(safe) || lv.State.Scheduled == nil || lv.State.Scheduled.What != "switch to 3 1 1 ab" {
		t.Fatalf("first run: calls %v, scheduled %+v", rs.calls, lv.State.Scheduled)
	}
	e.scheduleRuns(s)
	if len(rs.calls) != 1 {
		t.Errorf("the same safe time was scheduled again: %v", rs.calls)
	}
	// The safe time moved later (a server was first seen later): the
	// earlier entry would come too early.
	lv.State.Pending.SafeAt = safe.Add(2 * time.Second)
	e.scheduleRuns(s)
	if len(rs.calls) != 2 || !rs.calls[1].Equal(safe.Add(2*time.Second)) {
		t.Errorf("a later safe time: calls %v", rs.calls)
	}
	// A server blocks: no time is known; once the entry is past, it goes.
	lv.State.Pending.SafeAt = time.Time{}
	now = now.Add(time.Minute)
	e.scheduleRuns(s)
	if len(rs.calls) != 2 || lv.State.Scheduled != nil {
		t.Errorf("unknown safe time: calls %v, scheduled %+v (want none, entry cleared)", rs.calls, lv.State.Scheduled)
	}
	// Scheduling fails: kept for status, the run goes on.
	rs.err = errors.New("at: cannot open lockfile /var/spool/cron/atjobs/.SEQ")
	lv.State.Pending.SafeAt = now.Add(30 * time.Second)
	e.scheduleRuns(s)
	if lv.State.ScheduleErr == "" || lv.State.Scheduled != nil {
		t.Errorf("failed scheduling: error %q, scheduled %+v", lv.State.ScheduleErr, lv.State.Scheduled)
	}
	// A pending switch this run did not decide (Publish, rotate stage): its
	// remembered safe time schedules nothing.
	lv.State.Pending.SafeAt, lv.Decided, rs.err = now.Add(40*time.Second), false, nil
	n0 := len(rs.calls)
	e.scheduleRuns(s)
	if len(rs.calls) != n0 {
		t.Errorf("a remembered safe time was scheduled: %v", rs.calls[n0:])
	}
	// No pending switch, no rotate_every: nothing is scheduled.
	rs.err = nil
	lv.State.Pending = nil
	n := len(rs.calls)
	e.scheduleRuns(s)
	if len(rs.calls) != n {
		t.Errorf("nothing pending, yet scheduled: %v", rs.calls[n:])
	}
}
