package postfix

import (
	"bytes"
	"os"
	"strconv"
)

// childrenNamed lists the live processes whose parent is ppid and whose
// command name (/proc/PID/stat's comm, proc(5)) is comm; nil when /proc
// cannot be read.
func childrenNamed(ppid int, comm string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, parent, ok := procStat(pid); ok && parent == ppid && c == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// childOf reports whether pid is a live (not zombie) process whose parent
// is ppid: a pid reused by another process after an smtpd exited is not.
func childOf(pid, ppid int) bool {
	_, parent, ok := procStat(pid)
	return ok && parent == ppid
}

// procStat returns the comm and parent pid of a live process from
// /proc/PID/stat ("pid (comm) state ppid ...", proc(5); comm may hold
// spaces and parentheses, so it ends at the last ')'); ok is false for a
// process that is gone or a zombie.
func procStat(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 2 || f[0][0] == 'Z' || f[0][0] == 'X' {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return "", 0, false
	}
	return string(b[open+1 : end]), ppid, true
}
