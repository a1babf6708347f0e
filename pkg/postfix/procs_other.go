//go:build !linux

package postfix

// childrenNamed has no process table to read outside Linux: Reload then
// waits ReloadSettle.
func childrenNamed(ppid int, comm string) []int { return nil }

func childOf(pid, ppid int) bool { return false }
