//go:build !linux

package propagate

import "net"

// quickAck does nothing outside Linux (see quickack_linux.go).
func quickAck(net.Conn) {}
