package chaos

// The only file that knows internal/judgelab: the runner talks to the judge
// through judge, verdict and sampling below.

import (
	"context"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/judgelab"
)

// algorithm is a key algorithm the judge can force ("default" lets
// OpenSSL choose, as most senders do).
type algorithm string

const (
	algDefault algorithm = "default"
	algECDSA   algorithm = "ecdsa"
	algRSA     algorithm = "rsa"
)

func (a algorithm) lab() judgelab.Algorithm {
	switch a {
	case algECDSA:
		return judgelab.ECDSA
	case algRSA:
		return judgelab.RSA
	}
	return judgelab.Default
}

// verdict is one judge run: posttls-finger -l dane-only through the
// caching validating resolver.
type verdict struct {
	At                          time.Time
	Host                        string
	Port                        int
	Alg                         algorithm
	Verified, NoTLSA, Untrusted bool
	Line, Output                string
	Key                         string // hex SHA-256 of the presented leaf's SPKI
	Text                        string // one timeline line
	Err                         error
}

// failed reports whether v is a failure of the invariant: a TLSA RRset
// exists and the judge did not verify.
func (v verdict) failed() bool { return v.Err != nil || (!v.Verified && !v.NoTLSA) }

// target is one (host, port, algorithm) the sampler judges.
type target struct {
	Host string
	Port int
	Alg  algorithm
}

// judge is the lab's independent DANE client and its resolver.
type judge struct{ j *judgelab.Judge }

// startJudge starts unbound stubbed to servers with the zone's key as trust
// anchor (asked of servers[0]) and returns the judge using it.
func startJudge(t testing.TB, zone string, servers []string) *judge {
	t.Helper()
	r := judgelab.StartResolver(t, judgelab.ResolverOptions{
		Zone:        zone,
		Servers:     servers,
		TrustAnchor: judgelab.TrustAnchorFrom(t, servers[0], zone),
	})
	return &judge{j: judgelab.NewJudge(t, r)}
}

func (j *judge) check(ctx context.Context, host string, port int, alg algorithm) verdict {
	return fromLab(j.j.Check(ctx, host, port, alg.lab()))
}

// sampling is a running judge sampler.
type sampling struct{ s *judgelab.Sampler }

func (j *judge) startSampler(ctx context.Context, targets []target, interval time.Duration, servers, owners []string) *sampling {
	var ts []judgelab.Target
	for _, t := range targets {
		ts = append(ts, judgelab.Target{Host: t.Host, Port: t.Port, Alg: t.Alg.lab()})
	}
	return &sampling{s: j.j.StartSampler(ctx, judgelab.SamplerOptions{
		Targets: ts, Interval: interval, Servers: servers, Owners: owners,
	})}
}

// stop stops the sampler and returns its samples, failed verdicts and the
// timeline (judge verdicts and what each authoritative server served).
func (s *sampling) stop() (samples int, failures []verdict, timeline string) {
	rep := s.s.Stop()
	for _, v := range rep.Failures {
		failures = append(failures, fromLab(v))
	}
	return rep.Samples, failures, rep.Timeline
}

func fromLab(v judgelab.Verdict) verdict {
	alg := algDefault
	switch v.Alg {
	case judgelab.ECDSA:
		alg = algECDSA
	case judgelab.RSA:
		alg = algRSA
	}
	return verdict{At: v.At, Host: v.Host, Port: v.Port, Alg: alg, Verified: v.Verified, NoTLSA: v.NoTLSA,
		Untrusted: v.Untrusted, Line: v.Line, Output: v.Output, Key: v.Key, Text: v.String(), Err: v.Err}
}
