package deploy

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable of the crash-safety tests: when
// it equals the name of a step boundary, the process kills itself with
// SIGKILL there, as a power cut or an OOM kill would. It is never set in
// production; the tests re-run the step afterwards and check that the run
// converges and the invariant held.
const CrashEnv = "DANEHOOK_TEST_CRASH"

// crashpoint kills the process when CrashEnv names point.
func crashpoint(point string) {
	if os.Getenv(CrashEnv) == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
}
