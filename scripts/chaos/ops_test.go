package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Operation kinds. Every kind must appear in the CI seed list
// (TestSeedsCoverEveryKind).
const (
	kRenew         = "renew"          // client renewal with danehook's hooks, same key
	kRenewNewKey   = "renew-new-key"  // certbot --new-key / lego without --reuse-key
	kRenewNoHooks  = "renew-no-hooks" // certbot certonly / lego run without hooks: only the timer notices
	kRotateStage   = "rotate-stage"
	kRotateCommit  = "rotate-commit"
	kRotateAbort   = "rotate-abort"
	kTTL           = "ttl"       // ttl = N
	kTAAdd         = "ta-add"    // usages += 2 1 1, ta = "issuer"
	kTARemove      = "ta-remove" // usages = 3 1 1
	kHostAdd       = "host-add"  // hosts += mx2
	kHostRemove    = "host-remove"
	kChainMove     = "chain-move"   // mv chain file, point main.cf at it, reload; danehook's config at once (N=1) or later
	kChainConfig   = "chain-config" // danehook's chain_file follows a move made earlier
	kForeign301    = "foreign-3-0-1"
	kForeign311    = "foreign-stale-3-1-1"
	kForeign211    = "foreign-2-1-1-other-ca"
	kSecondaryStop = "secondary-stop"
	kSecondaryUp   = "secondary-start"
	kBlock         = "transfers-block"
	kUnblock       = "transfers-unblock"
	kRefused       = "primary-refused" // the provider's key may not change the owner for one run (Inner)
	kKill          = "sigkill"         // SIGKILL of Inner (tick, dane-deploy, dane-reload) after N ms
	kPostfixBroken = "postfix-check-broken"
	kRotateEvery   = "rotate-every" // rotate_every = "20s" (N=1, the timer stages and commits) or unset
	kTick          = "tick"
	kWait          = "wait" // N ms without any tick
)

// allKinds lists every kind, for the coverage check and the summary.
var allKinds = []string{kRenew, kRenewNewKey, kRenewNoHooks, kRotateStage, kRotateCommit, kRotateAbort,
	kTTL, kTAAdd, kTARemove, kHostAdd, kHostRemove, kChainMove, kChainConfig, kForeign301, kForeign311,
	kForeign211, kSecondaryStop, kSecondaryUp, kBlock, kUnblock, kRefused, kKill, kPostfixBroken, kRotateEvery,
	kTick, kWait}

// op is one operation of a sequence.
type op struct {
	Kind   string
	N      int    // ttl value, foreign record TTL, delay in ms (wait, sigkill), chain-move: 1 = config at once
	Inner  string // the run made under a fault (refused, postfix-check-broken) or killed (sigkill)
	NewKey bool   // renew-no-hooks, sigkill of dane-deploy: the renewal makes a new key
}

func (o op) String() string {
	switch o.Kind {
	case kTTL:
		return fmt.Sprintf("ttl=%d", o.N)
	case kWait:
		return fmt.Sprintf("wait %d ms", o.N)
	case kForeign301, kForeign311, kForeign211:
		return fmt.Sprintf("%s ttl %d", o.Kind, o.N)
	case kChainMove:
		if o.N == 1 {
			return o.Kind + " (config at once)"
		}
		return o.Kind + " (config later)"
	case kRotateEvery:
		if o.N == 1 {
			return `rotate_every = "20s"`
		}
		return "rotate_every unset"
	case kRenewNoHooks:
		if o.NewKey {
			return o.Kind + " new-key"
		}
		return o.Kind + " same-key"
	case kKill:
		s := fmt.Sprintf("sigkill %s after %d ms", o.Inner, o.N)
		if o.Inner == "dane-deploy" && o.NewKey {
			s += " (new-key renewal without hooks first)"
		} else if o.Inner == "dane-deploy" {
			s += " (same-key renewal without hooks first)"
		}
		return s
	case kRefused, kPostfixBroken:
		return o.Kind + " during " + o.Inner
	}
	return o.Kind
}

// plan is a drawn sequence: which client, how the lab starts, the ops.
type plan struct {
	Seed   uint64
	Client string // "certbot" or "lego"
	// Start is "fresh" (Postfix serves a self-signed chain, the first
	// issuance runs with the hooks) or "adopt-3-0-1" / "adopt-3-1-1"
	// (the lineage exists, Postfix serves it, a hand-made record with a
	// TTL of 8 s pins it; danehook's first run is a same-key renewal).
	Start string
	Ops   []op
}

func (p plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: client %s, start %s, %d operations:\n", p.Seed, p.Client, p.Start, len(p.Ops))
	for i, o := range p.Ops {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, o)
	}
	return b.String()
}

// kinds returns the set of kinds p uses, sorted.
func (p plan) kinds() []string {
	var ks []string
	for _, o := range p.Ops {
		if !slices.Contains(ks, o.Kind) {
			ks = append(ks, o.Kind)
		}
	}
	slices.Sort(ks)
	return ks
}

// weighted is one drawable kind and its weight.
type weighted struct {
	kind string
	w    int
}

// draw makes the plan of seed with steps operations. It keeps a small
// model of the lab so that every operation makes sense where it is drawn
// (a host is removed only once added, a secondary started only once
// stopped) and schedules the end of every fault 1–3 operations after its
// start; whatever is still on at the end is cleared by the runner before
// the convergence check.
func draw(seed uint64, steps int) plan {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := plan{Seed: seed, Client: []string{"certbot", "lego"}[r.IntN(2)]}
	switch r.IntN(5) {
	case 0:
		p.Start = "adopt-3-0-1"
	case 1:
		p.Start = "adopt-3-1-1"
	default:
		p.Start = "fresh"
	}
	var (
		mx2, ta, pendingChain bool
		rotateEvery           bool
		stopped, blocked      bool
		ends                  = map[string]int{} // end kind -> op index at which it is emitted
	)
	add := func(o op) { p.Ops = append(p.Ops, o) }
	if p.Start != "fresh" {
		add(op{Kind: kRenew})
	}
	for len(p.Ops) < steps {
		// Faults due to end come first.
		for _, end := range []string{kSecondaryUp, kUnblock, kChainConfig} {
			if i, ok := ends[end]; ok && len(p.Ops) >= i {
				delete(ends, end)
				add(op{Kind: end})
				switch end {
				case kSecondaryUp:
					stopped = false
				case kUnblock:
					blocked = false
				case kChainConfig:
					pendingChain = false
				}
			}
		}
		if len(p.Ops) >= steps {
			break
		}
		choices := []weighted{
			{kRenew, 6}, {kRenewNewKey, 6}, {kRenewNoHooks, 4},
			{kRotateStage, 3}, {kRotateCommit, 3}, {kRotateAbort, 2},
			{kTTL, 3}, {kForeign301, 2}, {kForeign311, 2}, {kForeign211, 2},
			{kRefused, 2}, {kKill, 4}, {kPostfixBroken, 2}, {kTick, 8}, {kWait, 4}, {kRotateEvery, 1},
		}
		if ta {
			choices = append(choices, weighted{kTARemove, 2})
		} else {
			choices = append(choices, weighted{kTAAdd, 3})
		}
		if mx2 {
			choices = append(choices, weighted{kHostRemove, 2})
		} else {
			choices = append(choices, weighted{kHostAdd, 3})
		}
		if !pendingChain {
			choices = append(choices, weighted{kChainMove, 2})
		}
		if !stopped && !blocked {
			choices = append(choices, weighted{kSecondaryStop, 2}, weighted{kBlock, 2})
		}
		total := 0
		for _, c := range choices {
			total += c.w
		}
		n := r.IntN(total)
		var kind string
		for _, c := range choices {
			if n < c.w {
				kind = c.kind
				break
			}
			n -= c.w
		}
		o := op{Kind: kind}
		switch kind {
		case kTTL:
			o.N = 2 + r.IntN(4) // 2..5 s
		case kWait:
			o.N = 1000 + r.IntN(6000)
		case kForeign301, kForeign311, kForeign211:
			o.N = 6 + r.IntN(5) // 6..10 s: higher than danehook's
		case kRenewNoHooks:
			o.NewKey = r.IntN(2) == 0
		case kKill:
			o.Inner = []string{"danectl tick", "dane-deploy", "dane-reload"}[r.IntN(3)]
			o.N = r.IntN(120) // a hook or tick run takes 10–700 ms here
			o.NewKey = r.IntN(2) == 0
		case kRefused:
			o.Inner = []string{kRenewNewKey, kRenew, kTick}[r.IntN(3)]
		case kPostfixBroken:
			o.Inner = []string{kRenewNewKey, kRenew, kTick}[r.IntN(3)]
		case kRotateEvery:
			rotateEvery = !rotateEvery
			if rotateEvery {
				o.N = 1
			}
		case kTAAdd:
			ta = true
		case kTARemove:
			ta = false
		case kHostAdd:
			mx2 = true
		case kHostRemove:
			mx2 = false
		case kChainMove:
			o.N = r.IntN(2)
			if o.N == 0 {
				pendingChain = true
				ends[kChainConfig] = len(p.Ops) + 2 + r.IntN(2)
			}
		case kSecondaryStop:
			stopped = true
			ends[kSecondaryUp] = len(p.Ops) + 2 + r.IntN(3)
		case kBlock:
			blocked = true
			ends[kUnblock] = len(p.Ops) + 2 + r.IntN(3)
		}
		add(o)
	}
	return p
}
