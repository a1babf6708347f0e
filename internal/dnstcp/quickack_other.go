//go:build !linux

package dnstcp

import "net"

// QuickAck does nothing outside Linux (see quickack_linux.go).
func QuickAck(net.Conn) {}
