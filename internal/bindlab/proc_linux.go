package bindlab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops named cleanly.
var terminate os.Signal = syscall.SIGTERM

// sysProcAttr makes the kernel kill named when the test process dies, so an
// interrupted `go test` leaves no server behind. (Pdeathsig follows the OS
// thread that started the child; the Go runtime does not retire threads that
// are not locked, so this holds in practice.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
