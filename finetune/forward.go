package finetune

import "fmt"

// Forward selects the forward pass a loss or logits function runs. It is an
// argument of each call (and of each Task), never a process-wide switch, so
// two goroutines can train with different forwards at once.
type Forward int

const (
	// ForwardAuto, the default, runs the fused whole-batch op when every
	// linear and layer-norm weight the forward uses is frozen, and the
	// per-token spago graph otherwise.
	ForwardAuto Forward = iota
	// ForwardGraph always builds the per-token spago graph: the reference
	// path the fused op is tested against, and what benchmarks compare with.
	ForwardGraph
)

// String names the forward ("auto" or "graph").
func (f Forward) String() string {
	switch f {
	case ForwardAuto:
		return "auto"
	case ForwardGraph:
		return "graph"
	}
	return fmt.Sprintf("Forward(%d)", int(f))
}

// oneForward reads the optional Forward argument of a call: none means
// ForwardAuto, more than one or an unknown value is an error.
func oneForward(fwd []Forward) (Forward, error) {
	switch len(fwd) {
	case 0:
		return ForwardAuto, nil
	case 1:
		if fwd[0] == ForwardAuto || fwd[0] == ForwardGraph {
			return fwd[0], nil
		}
		return 0, invalidf("unknown Forward %d; expected ForwardAuto (0) or ForwardGraph (1)", int(fwd[0]))
	}
	return 0, invalidf("pass at most one Forward, got %d", len(fwd))
}
