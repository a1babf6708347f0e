package dnsupdate

// Pipelined queries (decision T2). Reading 1,000 owners one TCP connection
// per query took 1.25 s against BIND on loopback (TCP setup and teardown per
// query, 32 at a time); the same queries pipelined on one connection took
// under 0.2 s, TSIG included. RFC 7766 §6.2.1.1 lets a client send several
// queries on one TCP connection without waiting, and servers answer them,
// possibly out of order, matched by message ID; BIND, Knot and PowerDNS all
// accept this. So every query (TLSA reads, zone discovery) that RFC2136 has
// in flight at the same moment shares one TCP connection; UPDATE messages
// keep a connection each (they are sent one after the other anyway, and an
// UPDATE's fate must never depend on another message's). The connection is
// closed as soon as no query waits on it, so an idle RFC2136 holds no
// socket and no goroutine. Each answer's TSIG is verified against the MAC
// of its own request (RFC 8945 §5.3), which miekg/dns's Conn cannot do for
// several requests in flight (it remembers only the last request's MAC).
// Messages are framed by internal/dnstcp: the queries that workers send at
// the same moment go out in one write, the answers come in many per read.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/danehook/danehook/internal/dnstcp"
	"github.com/miekg/dns"
)

// pipe is one TCP connection with queries in flight, answers matched by ID.
type pipe struct {
	conn    net.Conn
	w       *dnstcp.Writer
	mu      sync.Mutex // guards pending, dead
	pending map[uint16]*call
	dead    bool
	// answered counts the answers read (guarded by mu): a connection that
	// answered some queries before it closed made progress.
	answered int
}

type call struct {
	mac string // the request's TSIG MAC ("" unsigned)
	ch  chan callResult
}

type callResult struct {
	r   *dns.Msg
	err error
	// lost is set when the connection failed or closed before the answer
	// (fail): the query may be asked again on a new connection. progress
	// says that connection answered other queries first, or that the
	// server answered other queries meanwhile on any connection
	// (pipeExchangeOnce): a server that resets connections (ECONNRESET,
	// EPIPE) may discard answers it sent, so one connection's count alone
	// can miss them. reset says the peer reset the connection (ECONNRESET,
	// EPIPE) before an answer could be seen, or this query was never
	// written: the connection failed, not the query.
	lost, progress, reset bool
}

// pipeAttempts bounds how often one query is sent on connections that
// closed before answering anything, pipeResets on connections the peer
// reset before an answer could be seen (each needs a new connection
// dialled first); pipeMaxSends bounds it in all. RFC 7766
// §6.2.3 lets a server close a TCP connection at any time (miekg/dns
// servers do after 128 queries, PowerDNS after max-tcp-connection-queries),
// queries are idempotent, so the ones in flight are asked again on a new
// connection: without limit while each connection answers some queries
// before it closes, up to pipeAttempts times when one answers none.
const (
	pipeAttempts = 3
	pipeResets   = 64
	pipeMaxSends = 256
)

// errPipeClosed ends a wait when the connection failed or closed.
var errPipeClosed = errors.New("the TCP connection closed before the answer")

// pipeExchange sends query m on the shared connection to server (opening it
// when none is open) and waits for its answer, at most until ctx is done;
// a query whose connection closed before its answer is sent again on a new
// one (pipeAttempts).
// Like (*dns.Client).ExchangeWithConnContext it returns the answer together
// with a TSIG verification error (dns.ErrSig, dns.ErrTime, …) when the
// answer's TSIG does not verify.
func (p *RFC2136) pipeExchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	attempts, resets := 0, 0
	for sends := 1; ; sends++ {
		res := p.pipeExchangeOnce(ctx, m, server)
		switch {
		case res.progress:
		case res.reset:
			resets++
		default:
			attempts++
		}
		if res.lost && attempts < pipeAttempts && resets < pipeResets && sends < pipeMaxSends && ctx.Err() == nil {
			continue
		}
		return res.r, res.err
	}
}

// pipeExchangeOnce is one attempt of pipeExchange.
func (p *RFC2136) pipeExchangeOnce(ctx context.Context, m *dns.Msg, server string) callResult {
	answers := p.pipeAnswers.Load()
	pp, c, wire, err := p.register(ctx, m, server)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), context.Canceled)
		}
		return callResult{err: err}
	}
	id := m.Id
	dl, _ := ctx.Deadline()
	werr := pp.w.Write(wire, dl)
	if werr != nil {
		p.fail(pp, werr)
	}

	var res callResult
	select {
	case res = <-c.ch:
	case <-ctx.Done():
		res.err = ctx.Err()
		if errors.Is(res.err, context.Canceled) {
			res.err = fmt.Errorf("%w (%w)", context.Cause(ctx), context.Canceled)
		}
	}
	p.release(pp, id, c)
	if res.lost && p.pipeAnswers.Load() > answers {
		res.progress = true
	}
	if werr != nil && res.lost {
		res.reset = true // never written: the connection failed, not the query
	}
	return res
}

// register returns the open connection to server (dialling one if none is
// open) with a call for m registered on it under an ID no other call in
// flight uses, and m's wire form, signed when p has a key (m carries the
// stub TSIG record SetTsig adds).
func (p *RFC2136) register(ctx context.Context, m *dns.Msg, server string) (*pipe, *call, []byte, error) {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	pp := p.pipe
	if pp == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", server)
		if err != nil {
			return nil, nil, nil, err
		}
		dnstcp.QuickAck(conn)
		pp = &pipe{conn: conn, w: dnstcp.NewWriter(conn), pending: map[uint16]*call{}}
		p.pipe = pp
		go p.readLoop(pp)
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for {
		if _, used := pp.pending[m.Id]; !used {
			break
		}
		m.Id = dns.Id()
	}
	c := &call{ch: make(chan callResult, 1)}
	var wire []byte
	var err error
	if t := m.IsTsig(); t != nil && p.Key != nil {
		t.OrigId = m.Id
		wire, c.mac, err = dns.TsigGenerate(m, p.Key.Secret, "", false)
	} else {
		wire, err = m.Pack()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	pp.pending[m.Id] = c
	return pp, c, wire, nil
}

// readLoop delivers every answer on pp to the call waiting for its ID,
// verifying its TSIG, until the connection fails or is closed.
func (p *RFC2136) readLoop(pp *pipe) {
	rd := dnstcp.NewReader(pp.conn, func() { dnstcp.QuickAck(pp.conn) })
	for {
		buf, err := rd.Next()
		if err != nil {
			p.fail(pp, err)
			return
		}
		if len(buf) < 2 {
			continue
		}
		id := binary.BigEndian.Uint16(buf)
		pp.mu.Lock()
		c := pp.pending[id]
		delete(pp.pending, id)
		pp.answered++
		pp.mu.Unlock()
		p.pipeAnswers.Add(1)
		if c == nil {
			continue // an answer nobody waits for (its caller gave up)
		}
		r := new(dns.Msg)
		res := callResult{r: r}
		if err := r.Unpack(buf); err != nil {
			res.err = err
		} else if t := r.IsTsig(); t != nil && p.Key != nil {
			res.err = dns.TsigVerify(buf, p.Key.Secret, c.mac, false)
		}
		c.ch <- res
	}
}

// fail marks pp dead, ends every wait on it with err and closes it.
func (p *RFC2136) fail(pp *pipe, err error) {
	p.pmu.Lock()
	if p.pipe == pp {
		p.pipe = nil
	}
	p.pmu.Unlock()
	pp.mu.Lock()
	pending := pp.pending
	pp.pending = map[uint16]*call{}
	pp.dead = true
	progress := pp.answered > 0
	pp.mu.Unlock()
	reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = errPipeClosed
	}
	for _, c := range pending {
		c.ch <- callResult{err: err, lost: true, progress: progress, reset: reset}
	}
	_ = pp.conn.Close()
}

// release forgets call c, registered under id, and closes the connection
// when no query waits on it any more. The ID may already belong to a newer
// call (the answer to c freed it): that one is left alone.
func (p *RFC2136) release(pp *pipe, id uint16, c *call) {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	pp.mu.Lock()
	if pp.pending[id] == c {
		delete(pp.pending, id)
	}
	idle := len(pp.pending) == 0 && !pp.dead
	if idle {
		pp.dead = true
	}
	pp.mu.Unlock()
	if idle {
		if p.pipe == pp {
			p.pipe = nil
		}
		_ = pp.conn.Close()
	}
}
