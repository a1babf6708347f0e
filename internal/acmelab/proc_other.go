//go:build !linux

package acmelab

import (
	"os"
	"syscall"
)

// terminate is the signal that stops Pebble.
var terminate os.Signal = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
