package acmelab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops Pebble.
var terminate os.Signal = syscall.SIGTERM

// sysProcAttr makes the kernel kill Pebble when the test process dies, so an
// interrupted `go test` leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
