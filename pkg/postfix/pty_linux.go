package postfix

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// openTerminal opens a pseudo-terminal pair: the parent reads what the child
// writes on the terminal side. Postfix commands print their warnings and
// fatal errors on stderr only when stderr is a terminal (msg_vstream_init is
// enabled by isatty(2)); otherwise only to syslog or maillog_file. Giving the
// child a terminal as stdout and stderr lets errors name the real cause even
// on a machine without syslog and without maillog_file.
//
// The terminal is not made the child's controlling terminal (O_NOCTTY, no
// setsid), so closing it never sends SIGHUP.
func openTerminal() (parent, child *os.File, err error) {
	parent, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	// Control, not Fd: Fd would switch the descriptor to blocking mode and
	// read deadlines would stop working.
	rc, err := parent.SyscallConn()
	if err != nil {
		parent.Close()
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	var n uint32
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		var unlock int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
			ioctlErr = fmt.Errorf("unlock: %w", e)
			return
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
			ioctlErr = fmt.Errorf("get number: %w", e)
		}
	})
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		parent.Close()
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	child, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		parent.Close()
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	return parent, child, nil
}

// processGroup puts the command in its own process group so that a timeout
// kills the whole group, including the background postsuper that
// `postfix reload` leaves behind.
func processGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group led by pid.
func killGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }
