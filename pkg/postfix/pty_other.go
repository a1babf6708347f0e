//go:build !linux

package postfix

import (
	"errors"
	"os"
	"syscall"
)

// openTerminal is only implemented on Linux; elsewhere output is captured
// through pipes and errors rely on maillog_file.
func openTerminal() (parent, child *os.File, err error) {
	return nil, nil, errors.New("pseudo-terminals are only used on linux")
}

// processGroup returns nil: no process group handling outside Linux.
func processGroup() *syscall.SysProcAttr { return nil }

// killGroup is a no-op outside Linux; the command itself is killed.
func killGroup(pid int) error { return nil }
