package dnstcp

import (
	"net"
	"syscall"
)

// QuickAck turns on TCP_QUICKACK (tcp(7)) on conn: acknowledge at once
// instead of delaying the ACK up to 40 ms. A server whose socket keeps
// Nagle's algorithm on holds its next small answer until our ACK arrives, so
// delayed ACKs stall a pipelined connection by tens of milliseconds. Linux
// clears the flag again on its own, so it is set after every read.
func QuickAck(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
