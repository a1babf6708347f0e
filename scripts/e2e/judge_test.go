package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/judgelab"
)

// The judge is the suite's oracle (issue 11): Postfix's own DANE client,
// posttls-finger -l dane-only, asking a validating, caching unbound over
// the signed lab zone — what a sending MTA does. Every scenario step runs
// with a judge sampler (every 0.5 s, each algorithm the server offers, and
// the servers asked directly for the timeline); the step fails when any
// sample is not Verified while a TLSA RRset exists. danehook's own sampler
// (sampler_test.go) is kept beside it as a diagnostic that points at the
// name server a failure came from.

// judgeTargets are the judge runs of one sample: the default handshake and
// one forced to each key algorithm Postfix serves (the world serves one
// ECDSA chain file; forcing RSA would only prove that it has no RSA key).
func (w *world) judgeTargets() []judgelab.Target {
	return []judgelab.Target{
		{Host: host, Port: w.pf.Port, Alg: judgelab.Default},
		{Host: host, Port: w.pf.Port, Alg: judgelab.ECDSA},
	}
}

// startJudge starts a judge sampler over the world's targets.
func (w *world) startJudge() *judgelab.Sampler {
	return w.judge.StartSampler(context.Background(), judgelab.SamplerOptions{
		Targets: w.judgeTargets(),
		Servers: w.servers(),
		Owners:  []string{w.owner()},
	})
}

// finishJudge stops s and fails t when any judge sample failed, printing
// the timeline; it logs the sample count either way.
func (w *world) finishJudge(t *testing.T, s *judgelab.Sampler) judgelab.Report {
	t.Helper()
	rep := s.Stop()
	t.Logf("%s", rep.Summary())
	if rep.Failed() {
		t.Errorf("the judge (posttls-finger -l dane-only through the lab's caching resolver %s) failed %d of %d samples; timeline:\n%s",
			w.resolver.Addr, len(rep.Failures), rep.Samples, rep.Timeline)
	} else if rep.Samples == 0 {
		t.Errorf("the judge took no sample; timeline:\n%s", rep.Timeline)
	}
	return rep
}

// judgeNow runs the judge once per target and fails t unless each run is
// Verified; it returns the verdicts.
func (w *world) judgeNow() []judgelab.Verdict {
	w.t.Helper()
	var out []judgelab.Verdict
	for _, tg := range w.judgeTargets() {
		ctx, cancel := context.WithTimeout(w.t.Context(), time.Minute)
		v := w.judge.Check(ctx, tg.Host, tg.Port, tg.Alg)
		cancel()
		if !v.Verified {
			w.t.Errorf("the judge says %v; want Verified\n%s", v, v.Output)
		}
		out = append(out, v)
	}
	return out
}

// judgeLines are the verdict lines of vs for the walkthrough.
func judgeLines(vs []judgelab.Verdict) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("   posttls-finger (" + string(v.Alg) + "): " + v.Line + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
