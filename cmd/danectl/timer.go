package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
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
		tr.Reason = "a switch is pending but " + unit + " is not enabled (systemctl is-enabled: " + detail +
			"): only the next renewal's hooks would complete it; run 'systemctl enable --now " + unit + "'"
	}
	return tr
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
