package finetune

import (
	"encoding/gob"
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
)

// torchAdam is torch.optim.Adam (decoupled false) or torch.optim.AdamW
// (decoupled true), single-tensor form, amsgrad and maximize off:
//
//	AdamW: p ← p·(1 − lr·λ)            Adam with λ > 0: g ← g + λ·p
//	t ← t+1;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
//
// Bias correction comes before ε, and the step t is the param's own
// (torch keeps it per parameter). Moments are kept in float64 whatever the
// param's dtype.
type torchAdam struct {
	lr, beta1, beta2, eps, weightDecay float64
	decoupled                          bool
}

// AdamState is the optimizer state torchAdam keeps on a param (in
// nn.Param.State): torch's state["step"], state["exp_avg"] and
// state["exp_avg_sq"].
type AdamState struct {
	Step     int
	ExpAvg   []float64
	ExpAvgSq []float64
}

func init() {
	gob.Register(&AdamState{})
}

// step updates p from its gradient, or from a zero gradient when p has
// none (zeroMissing; a row of PEFT's trainable_tokens_delta that the batch
// did not use still gets a zero gradient and a step in torch). Without a
// gradient and without zeroMissing, p is left alone (torch skips params
// whose grad is None). It clears p's gradient. It reports whether p was
// stepped.
func (o torchAdam) step(p *nn.Param, zeroMissing bool) (bool, error) {
	hasGrad := p.HasGrad()
	if !hasGrad && !zeroMissing {
		return false, nil
	}
	value, ok := p.Value().(mat.Matrix)
	if !ok {
		return false, fmt.Errorf("param value is a %T, expected a matrix", p.Value())
	}
	p32, p64, err := rows.Floats(value)
	if err != nil {
		return false, err
	}
	n := value.Size()
	var g32 []float32
	var g64 []float64
	if hasGrad {
		gm, ok := p.Grad().(mat.Matrix)
		if !ok || gm.Size() != n {
			return false, fmt.Errorf("param gradient does not match its value (shape %v)", value.Shape())
		}
		if g32, g64, err = rows.Floats(gm); err != nil {
			return false, err
		}
	}
	st, err := adamStateOf(p, n)
	if err != nil {
		return false, err
	}
	st.Step++
	bc1 := 1 - math.Pow(o.beta1, float64(st.Step))
	bc2sqrt := math.Sqrt(1 - math.Pow(o.beta2, float64(st.Step)))
	stepSize := o.lr / bc1
	for i := 0; i < n; i++ {
		var w, g float64
		if p32 != nil {
			w = float64(p32[i])
		} else {
			w = p64[i]
		}
		switch {
		case g32 != nil:
			g = float64(g32[i])
		case g64 != nil:
			g = g64[i]
		}
		if o.weightDecay != 0 {
			if o.decoupled {
				w *= 1 - o.lr*o.weightDecay
			} else {
				g += o.weightDecay * w
			}
		}
		m := o.beta1*st.ExpAvg[i] + (1-o.beta1)*g
		v := o.beta2*st.ExpAvgSq[i] + (1-o.beta2)*g*g
		st.ExpAvg[i], st.ExpAvgSq[i] = m, v
		w -= stepSize * m / (math.Sqrt(v)/bc2sqrt + o.eps)
		if p32 != nil {
			p32[i] = float32(w)
		} else {
			p64[i] = w
		}
	}
	if hasGrad {
		p.ZeroGrad()
	}
	return true, nil
}

// adamStateOf returns p's AdamState, creating it on first use. A state left
// by another optimizer is an error, not silently replaced.
func adamStateOf(p *nn.Param, n int) (*AdamState, error) {
	switch s := p.State.(type) {
	case nil:
		st := &AdamState{ExpAvg: make([]float64, n), ExpAvgSq: make([]float64, n)}
		p.State = st
		return st, nil
	case *AdamState:
		if len(s.ExpAvg) != n || len(s.ExpAvgSq) != n {
			return nil, fmt.Errorf("param's Adam state has %d/%d elements, the param %d", len(s.ExpAvg), len(s.ExpAvgSq), n)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("param holds optimizer state %T from another optimizer; clear nn.Param.State to restart it", p.State)
	}
}
