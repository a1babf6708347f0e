package judgelab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops unbound cleanly.
var terminate os.Signal = syscall.SIGTERM

// sysProcAttr makes the kernel kill the child when the test process dies,
// so an interrupted `go test` leaves no resolver behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
