package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ciSeeds is the fixed list TestChaos runs by default (CI). Together they
// draw every operation kind, both clients and every start, each at least
// twice (CHAOS_PICK=2 go test -run TestPickSeeds -v picked them)
// (TestSeedsCoverEveryKind checks it); `go test -run TestSeedsCover -v`
// prints what each seed draws.
var ciSeeds = []uint64{66, 504, 3906, 96, 1353, 1067}

// defaultSteps is the number of operations a sequence draws (CHAOS_STEPS
// overrides it).
const defaultSteps = 14

// TestChaos runs randomized sequences against the real lab (see the
// package documentation). Seeds: SEED=N runs that one; CHAOS_SEEDS=N runs N
// random seeds; CHAOS_DURATION=D keeps starting random seeds until D has
// passed; otherwise ciSeeds. SEED may list several seeds, comma-separated. CHAOS_PARALLEL (default 2) sequences run at
// once; CHAOS_STEPS sets the operations per sequence; CHAOS_RESULTS names a
// file that receives one JSON line per sequence; CHAOS_VERBOSE=1 prints the
// timeline of passing sequences too.
func TestChaos(t *testing.T) {
	steps := envInt(t, "CHAOS_STEPS", defaultSteps)
	parallel := envInt(t, "CHAOS_PARALLEL", 2)
	var (
		mu       sync.Mutex
		queue    []uint64
		deadline time.Time
		outcomes []outcome
	)
	random := false
	switch {
	case os.Getenv("SEED") != "":
		// One seed, or a comma-separated list (SEED=66,504,3906).
		for _, f := range strings.Split(os.Getenv("SEED"), ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("SEED=%q: %v", os.Getenv("SEED"), err)
			}
			queue = append(queue, n)
		}
	case os.Getenv("CHAOS_DURATION") != "":
		d, err := time.ParseDuration(os.Getenv("CHAOS_DURATION"))
		if err != nil {
			t.Fatalf("CHAOS_DURATION=%q: %v", os.Getenv("CHAOS_DURATION"), err)
		}
		deadline = time.Now().Add(d)
		random = true
		if n := envInt(t, "CHAOS_SEEDS", 0); n > 0 {
			queue = randomSeeds(n)
			random = false
		}
	case os.Getenv("CHAOS_SEEDS") != "":
		queue = randomSeeds(envInt(t, "CHAOS_SEEDS", 1))
	default:
		queue = slices.Clone(ciSeeds)
	}
	next := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if !deadline.IsZero() && time.Now().After(deadline) {
			return 0, false
		}
		if len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			return s, true
		}
		if random {
			return rand.Uint64() % 1_000_000, true
		}
		return 0, false
	}
	var results *os.File
	if p := os.Getenv("CHAOS_RESULTS"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		results = f
	}
	t.Run("workers", func(t *testing.T) {
		for i := range parallel {
			t.Run(fmt.Sprintf("worker-%d", i+1), func(t *testing.T) {
				t.Parallel()
				for {
					seed, ok := next()
					if !ok {
						return
					}
					t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
						o := runSeed(t, seed, steps)
						fmt.Println(o.line())
						mu.Lock()
						outcomes = append(outcomes, o)
						if results != nil {
							b, _ := json.Marshal(o)
							results.Write(append(b, '\n'))
						}
						mu.Unlock()
					})
				}
			})
		}
	})
	var nSteps, samples, checks, fails int
	var failed []string
	for _, o := range outcomes {
		nSteps += o.Steps
		samples += o.Samples
		checks += o.Checks
		fails += len(o.Failures)
		if len(o.Failures) > 0 {
			failed = append(failed, strconv.FormatUint(o.Seed, 10))
		}
	}
	summary := fmt.Sprintf("chaos summary: %d sequences, %d steps, %d judge samples (+%d step checks), %d failures in %d sequences",
		len(outcomes), nSteps, samples, checks, fails, len(failed))
	if len(failed) > 0 {
		summary += "; failing seeds: " + strings.Join(failed, " ") + " (replay: SEED=<n> go test -count=1 -v ./scripts/chaos -run TestChaos)"
	}
	fmt.Println(summary)
	t.Log(summary)
}

// runSeed draws and runs one sequence and fails t with the seed, the
// sequence and the timeline when it found a failure.
func runSeed(t *testing.T, seed uint64, steps int) outcome {
	p := draw(seed, steps)
	log := &lockedBuffer{}
	w := newWorld(t, p.Client, log)
	o := runPlan(w, p)
	if len(o.Failures) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "chaos: seed %d FAILED; replay with SEED=%d go test -count=1 -v ./scripts/chaos -run TestChaos\n%s", seed, seed, o.Plan)
		fmt.Fprintf(&b, "failures (%d; the first of each step and class, with how many more):\n", len(o.Failures))
		b.WriteString(groupFailures(o.Failures))
		fmt.Fprintf(&b, "timeline (runner steps, commands, judge and authoritative servers):\n%s", o.Timeline)
		t.Error(b.String())
	} else if os.Getenv("CHAOS_VERBOSE") != "" {
		t.Logf("chaos: seed %d passed\n%stimeline:\n%s", seed, o.Plan, o.Timeline)
	}
	return o
}

// groupFailures lists the first failure of each (step, class) and how many
// more there were.
func groupFailures(fs []failure) string {
	type key struct {
		step  int
		class string
	}
	var order []key
	first := map[key]failure{}
	count := map[key]int{}
	for _, f := range fs {
		k := key{f.Step, f.Class}
		if _, ok := first[k]; !ok {
			order = append(order, k)
			first[k] = f
		}
		count[k]++
	}
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "  - %s", first[k])
		if n := count[k] - 1; n > 0 {
			fmt.Fprintf(&b, " (+%d more in this step)", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func randomSeeds(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = rand.Uint64() % 1_000_000
	}
	return out
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// TestSeedsCoverEveryKind checks, without a lab, that the CI seeds draw
// every operation kind, both clients and every start, and prints the
// sequences.
func TestSeedsCoverEveryKind(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range ciSeeds {
		p := draw(s, defaultSteps)
		t.Log(p.String())
		for _, f := range features(p) {
			seen[f] = true
		}
	}
	for _, k := range wantFeatures() {
		if !seen[k] {
			t.Errorf("the CI seeds %v never draw %q", ciSeeds, k)
		}
	}
}

// features are what a plan exercises: its kinds, the runs killed or made
// under a fault, its client and its start.
func features(p plan) []string {
	fs := p.kinds()
	for _, o := range p.Ops {
		if o.Kind == kKill || o.Kind == kRefused || o.Kind == kPostfixBroken {
			fs = append(fs, o.Kind+"/"+o.Inner)
		}
	}
	return append(fs, "client/"+p.Client, "start/"+p.Start)
}

func uniq(xs []string) []string {
	slices.Sort(xs)
	return slices.Compact(xs)
}

func wantFeatures() []string {
	return append(slices.Clone(allKinds), "client/certbot", "client/lego", "start/fresh", "start/adopt-3-0-1",
		"start/adopt-3-1-1", "sigkill/danectl tick", "sigkill/dane-deploy", "sigkill/dane-reload")
}

// TestPickSeeds (CHAOS_PICK=N) prints a small seed list, chosen greedily
// from seeds 1..5000, in which every feature appears in at least N
// different sequences: a candidate for ciSeeds.
func TestPickSeeds(t *testing.T) {
	if os.Getenv("CHAOS_PICK") == "" {
		t.Skip("set CHAOS_PICK=N to pick a CI seed list covering every feature N times")
	}
	rounds := envInt(t, "CHAOS_PICK", 1)
	var picked []uint64
	for range rounds {
		missing := map[string]bool{}
		for _, f := range wantFeatures() {
			missing[f] = true
		}
		for len(missing) > 0 {
			best, bestN := uint64(0), 0
			for s := uint64(1); s <= 5000; s++ {
				if slices.Contains(picked, s) {
					continue
				}
				n := 0
				for _, f := range uniq(features(draw(s, defaultSteps))) {
					if missing[f] {
						n++
					}
				}
				if n > bestN {
					best, bestN = s, n
				}
			}
			if bestN == 0 {
				t.Fatalf("no seed draws %v", missing)
			}
			picked = append(picked, best)
			for _, f := range features(draw(best, defaultSteps)) {
				delete(missing, f)
			}
		}
	}
	t.Logf("ciSeeds = %v", picked)
}

// TestDrawIsReproducible: the same seed draws the same plan.
func TestDrawIsReproducible(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		a, b := draw(seed, defaultSteps), draw(seed, defaultSteps)
		if a.String() != b.String() {
			t.Fatalf("seed %d draws\n%s\nthen\n%s", seed, a, b)
		}
		if len(a.Ops) != defaultSteps {
			t.Fatalf("seed %d draws %d operations, want %d", seed, len(a.Ops), defaultSteps)
		}
	}
}
