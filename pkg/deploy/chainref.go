package deploy

import "github.com/danehook/danehook/pkg/chain"

// chainRef is a chain handed to the planner by a caller, with the file it
// came from for messages.
type chainRef struct {
	Chain *chain.Chain
	From  string
}
