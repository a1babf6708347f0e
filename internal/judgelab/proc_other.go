//go:build !linux

package judgelab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops unbound cleanly.
var terminate os.Signal = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
