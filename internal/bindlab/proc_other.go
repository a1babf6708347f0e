//go:build !linux

package bindlab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops named cleanly.
var terminate os.Signal = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
