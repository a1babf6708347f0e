package rotate

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestCrashHelper is not a test: the crash tests run the test binary again
// with it selected to perform one step in a child process that kills itself
// at the crash point named by crashEnv.
func TestCrashHelper(t *testing.T) {
	cfgPath := os.Getenv("DANEHOOK_TEST_HELPER_CONFIG")
	if cfgPath == "" {
		t.Skip("helper process for the crash tests")
	}
	e := labEngine(t, cfgPath)
	point := os.Getenv(crashEnv)
	crashHook = func(p string) {
		if p == point {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL cannot be caught; wait for it to land
		}
	}
	var err error
	switch step := os.Getenv("DANEHOOK_TEST_HELPER_STEP"); step {
	case "stage":
		_, _, err = Stage(t.Context(), e, "mail", KeySpec{})
	case "commit":
		_, err = Commit(t.Context(), e, "mail", true)
	default:
		t.Fatalf("unknown step %q", step)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// crashEnv names the crash point for the helper process.
const crashEnv = "DANEHOOK_TEST_CRASH"

// crashChild runs step in a child test process that kills itself at point.
func crashChild(t *testing.T, cfgPath, step, point string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DANEHOOK_TEST_HELPER_CONFIG="+cfgPath, "DANEHOOK_TEST_HELPER_STEP="+step, crashEnv+"="+point)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("child %s at %s: %v (want killed by SIGKILL)\n%s", step, point, err, out)
	}
}

// TestRotationCrashRecovery kills the process at each step boundary of
// stage and commit and checks that running the step again converges, and
// that at every point the served chain's record is still published.
func TestRotationCrashRecovery(t *testing.T) {
	for _, tc := range []struct{ step, point string }{
		{"stage", "stage:key-written"},
		{"stage", "stage:recorded"},
		{"commit", "commit:recorded"},
		{"commit", "commit:swapped"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			e, _, _, key := legoLab(t, "")
			current := servedRecords(t, e)[0]
			if tc.step == "commit" {
				if _, _, err := Stage(t.Context(), e, "mail", KeySpec{}); err != nil {
					t.Fatal(err)
				}
				waitServedEverywhere(t, e)
				backdateSightings(t, e)
			}
			crashChild(t, e.Config.Path, tc.step, tc.point)
			if !has(servedRecords(t, e), strings.Fields(current)[3]) {
				t.Fatal("the served chain's record disappeared after the crash")
			}
			// Run the step again: it converges.
			switch tc.step {
			case "stage":
				n, _, err := Stage(t.Context(), e, "mail", KeySpec{})
				if err != nil {
					t.Fatalf("Stage after crash: %v", err)
				}
				if !has(servedRecords(t, e), n.SPKI) {
					t.Error("staged record not published after rerun")
				}
				if got := keyFileSPKI(t, n.File); got != n.SPKI {
					t.Errorf("staged key file holds %q, the state records %s", got, n.SPKI)
				}
			case "commit":
				if _, err := Commit(t.Context(), e, "mail", true); err != nil {
					t.Fatalf("Commit after crash: %v", err)
				}
				st := lineageState(t, e, "mail")
				if st.Next == nil || !st.Next.Swapped || keyFileSPKI(t, key) != st.Next.SPKI {
					t.Errorf("after rerun: state %+v, lego key %s", st.Next, keyFileSPKI(t, key))
				}
			}
		})
	}
}
