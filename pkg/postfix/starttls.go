package postfix

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// DefaultHandshakeTimeout bounds Handshake (connect, SMTP dialogue and TLS
// handshake together) when the context has no earlier deadline.
const DefaultHandshakeTimeout = 30 * time.Second

// ErrNoSTARTTLS is matched (errors.Is) by the error of Handshake and Verify
// when the server's EHLO response does not offer STARTTLS (RFC 3207 §4), or
// the server refuses the STARTTLS command (for example 454 when smtpd cannot
// load its chain files).
var ErrNoSTARTTLS = errors.New("server does not offer STARTTLS")

// Handshake connects to addr ("host:port", e.g. "127.0.0.1:25"), reads the
// 220 greeting (one or more lines, RFC 5321 §4.2), sends EHLO with the local
// address literal, requires STARTTLS among the EHLO keywords, issues it
// (RFC 3207), completes a TLS handshake with serverName as SNI and sends QUIT.
//
// The server's certificates are not verified here (InsecureSkipVerify): a
// DANE chain is judged against TLSA records (see Verify), not against PKIX
// roots. It returns the chain the server presented, leaf first, and the TLS
// connection state. The whole exchange is bounded by ctx and by
// DefaultHandshakeTimeout. Errors name addr; a missing or refused STARTTLS
// matches ErrNoSTARTTLS.
func Handshake(ctx context.Context, addr, serverName string) ([]*x509.Certificate, tls.ConnectionState, error) {
	return starttls(ctx, addr, &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // the chain is verified by DANE (Verify), not PKIX
	})
}

// starttls is Handshake with the given TLS client configuration.
func starttls(ctx context.Context, addr string, cfg *tls.Config) ([]*x509.Certificate, tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	fail := func(err error) ([]*x509.Certificate, tls.ConnectionState, error) {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, tls.ConnectionState{}, fmt.Errorf("starttls %s: %w", addr, err)
	}

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	defer raw.Close()
	// The end of ctx (its deadline or a cancel) interrupts a blocked read or
	// write; ctx.Err() is set by then, so errors say why.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tp := textproto.NewConn(raw)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return fail(fmt.Errorf("greeting: %w", reply(err)))
	}
	helo := addressLiteral(raw.LocalAddr())
	ehlo, err := command(tp, 250, "EHLO "+helo)
	if err != nil {
		return fail(fmt.Errorf("EHLO: %w", err))
	}
	if !hasKeyword(ehlo, "STARTTLS") {
		quit(tp)
		return fail(ErrNoSTARTTLS)
	}
	if _, err := command(tp, 220, "STARTTLS"); err != nil {
		var re *replyError
		if errors.As(err, &re) {
			err = fmt.Errorf("%w: %w", err, ErrNoSTARTTLS)
		}
		return fail(fmt.Errorf("STARTTLS: %w", err))
	}

	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("tls handshake: %w", err))
	}
	state := conn.ConnectionState()
	quit(textproto.NewConn(conn))
	if len(state.PeerCertificates) == 0 {
		return fail(errors.New("tls handshake: the server sent no certificate"))
	}
	return state.PeerCertificates, state, nil
}

// command sends one SMTP command line and reads its response (one or more
// lines, RFC 5321 §4.2.1), which must carry code. It returns the response
// text, one line per response line, without the codes.
func command(c *textproto.Conn, code int, line string) (string, error) {
	id, err := c.Cmd("%s", line)
	if err != nil {
		return "", err
	}
	c.StartResponse(id)
	defer c.EndResponse(id)
	_, msg, err := c.ReadResponse(code)
	return msg, reply(err)
}

// replyError is an SMTP reply with an unexpected code.
type replyError struct {
	Code int
	Text string // the reply's lines joined with " / "
}

func (e *replyError) Error() string { return fmt.Sprintf("server answered %d %s", e.Code, e.Text) }

// reply turns a *textproto.Error (which quotes the text) into a *replyError
// that says it as the server did; other errors are returned as they are.
func reply(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &replyError{Code: te.Code, Text: strings.ReplaceAll(te.Msg, "\n", " / ")}
	}
	return err
}

// hasKeyword reports whether an EHLO response message (lines without their
// reply codes, the first being the greeting) lists keyword.
func hasKeyword(msg, keyword string) bool {
	lines := strings.Split(msg, "\n")
	for _, l := range lines[min(1, len(lines)):] {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// quit sends QUIT and reads the reply, ignoring errors: the exchange that
// matters is over.
func quit(c *textproto.Conn) {
	command(c, 221, "QUIT")
}

// addressLiteral is the EHLO argument for a connection's local address:
// "[127.0.0.1]" or "[IPv6:::1]" (RFC 5321 §4.1.3).
func addressLiteral(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return "[127.0.0.1]"
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ta.IP.String() + "]"
}
