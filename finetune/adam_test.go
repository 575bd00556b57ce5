package finetune_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// adamReference is testdata/hfref/adam.json: torch.optim.Adam/AdamW steps.
type adamReference struct {
	Shape   []int       `json:"shape"`
	Initial []float64   `json:"initial"`
	Grads   [][]float64 `json:"grads"`
	Cases   []struct {
		Optimizer   string      `json:"optimizer"`
		LR          float64     `json:"lr"`
		Beta1       float64     `json:"beta1"`
		Beta2       float64     `json:"beta2"`
		Eps         float64     `json:"eps"`
		WeightDecay float64     `json:"weight_decay"`
		Params      [][]float64 `json:"params"` // after each step
	} `json:"cases"`
}

// gradTask's loss is Σ p⊙G with G the gradient of the current step, so
// the gradient of p is exactly G.
func gradTask(p *nn.Param, grads [][]float64, step *int) *finetune.Task {
	return &finetune.Task{Size: 1, Loss: func([]int) (mat.Tensor, error) {
		g := mat.NewDense[float64](mat.WithShape(p.Shape()...), mat.WithBacking(append([]float64(nil), grads[*step]...)))
		return ag.ReduceSum(ag.Prod(p, g)), nil
	}}
}

func relDiff(got, want []float64) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(got[i]-want[i]))
		s = math.Max(s, math.Abs(want[i]))
	}
	return d / s
}

// TestAdamMatchesTorch runs the trainer's Adam and AdamW on the parameters
// and gradients of testdata/hfref/adam.json and compares every step with
// torch.optim.Adam/AdamW (float64). Run with -v for the figures.
func TestAdamMatchesTorch(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testmodels.Dir("hfref"), "adam.json"))
	require.NoError(t, err)
	var ref adamReference
	require.NoError(t, json.Unmarshal(data, &ref))
	require.NotEmpty(t, ref.Cases)
	for _, c := range ref.Cases {
		for _, variant := range []string{c.Optimizer, "spago-" + c.Optimizer} {
			if variant == "spago-adam" && c.WeightDecay != 0 {
				continue // spago's adam has no L2 term
			}
			p := vector(append([]float64(nil), ref.Initial...)...) // flat: the update is element-wise
			tr, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, Optimizer: variant, LR: c.LR,
				Beta1: c.Beta1, Beta2: c.Beta2, Epsilon: c.Eps, WeightDecay: c.WeightDecay, Quiet: true})
			require.NoError(t, err)
			step := 0
			task := gradTask(p, ref.Grads, &step)
			worst := 0.0
			for ; step < len(ref.Grads); step++ {
				info, err := tr.Step(task, []int{0})
				require.NoError(t, err)
				require.Equal(t, 1, info.Updated)
				worst = math.Max(worst, relDiff(p.Value().Data().F64(), c.Params[step]))
			}
			t.Logf("%-11s lr %g betas (%g, %g) eps %g weight decay %g: worst relative difference from torch over %d steps %.2g",
				variant, c.LR, c.Beta1, c.Beta2, c.Eps, c.WeightDecay, len(ref.Grads), worst)
			if variant == c.Optimizer {
				assert.Less(t, worst, 1e-12, "%s must follow torch", variant)
			} else {
				assert.Greater(t, worst, 1e-6, "%s is expected to differ from torch", variant)
			}
		}
	}
}

func TestAdamWWeightDecayDefaultsToTorchs(t *testing.T) {
	for _, c := range []struct {
		cfg  finetune.Config
		want float64 // the param after one step with a zero gradient
	}{
		{finetune.Config{Optimizer: finetune.OptimizerAdamW, LR: 0.1}, 2 * (1 - 0.1*0.01)},
		{finetune.Config{Optimizer: finetune.OptimizerAdamW, LR: 0.1, WeightDecay: 0.5}, 2 * (1 - 0.1*0.5)},
		{finetune.Config{Optimizer: finetune.OptimizerAdam, LR: 0.1}, 2},
	} {
		p := vector(2)
		c.cfg.Params, c.cfg.Quiet = []*nn.Param{p}, true
		tr, err := finetune.NewTrainer(c.cfg)
		require.NoError(t, err)
		zero := [][]float64{{0}}
		step := 0
		_, err = tr.Step(gradTask(p, zero, &step), []int{0})
		require.NoError(t, err)
		assert.InDelta(t, c.want, p.Value().Data().F64()[0], 1e-15, "%+v", c.cfg)
	}
}

// Token rows follow PEFT's one-tensor delta: a row the batch did not use
// still gets a (zero-gradient) step, so AdamW decays it and Adam moves it
// by its momentum. Other params without a gradient are left alone.
func TestAdamStepsTokenRowsWithoutGradient(t *testing.T) {
	used, unused, other := vector(1), vector(3), vector(5)
	tr, err := finetune.NewTrainer(finetune.Config{Optimizer: finetune.OptimizerAdamW, LR: 0.1, WeightDecay: 0.1,
		TokenParams: []*nn.Param{used, unused}, Params: []*nn.Param{other}, Quiet: true})
	require.NoError(t, err)
	task := &finetune.Task{Size: 1, Loss: func([]int) (mat.Tensor, error) { return ag.ReduceSum(ag.Square(used)), nil }}
	info, err := tr.Step(task, []int{0})
	require.NoError(t, err)
	assert.Equal(t, 2, info.Updated)
	assert.InDelta(t, 3*(1-0.1*0.1), unused.Value().Data().F64()[0], 1e-15, "decayed, no gradient step")
	assert.Equal(t, 5.0, other.Value().Data().F64()[0], "a non-token param without gradient is not stepped")
	// torch at step 1: p·(1−lr·λ) − lr·m̂/(√v̂+ε), m̂ = g = 2, √v̂ = |g|.
	assert.InDelta(t, 1*(1-0.1*0.1)-0.1*2/(2+1e-8), used.Value().Data().F64()[0], 1e-15)
	st, ok := unused.State.(*finetune.AdamState)
	require.True(t, ok)
	assert.Equal(t, 1, st.Step)
}

func TestAdamRefusesForeignOptimizerState(t *testing.T) {
	p := vector(1, 2)
	p.State = &adam.State{}
	tr, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, Quiet: true})
	require.NoError(t, err)
	_, err = tr.Step(paramTask(p), []int{0})
	assert.ErrorContains(t, err, "from another optimizer")
	assert.Equal(t, []float64{1, 2}, p.Value().Data().F64(), "nothing changed")
}

func TestAdamFloat32Params(t *testing.T) {
	p32 := nn.NewParam(mat.NewDense[float32](mat.WithBacking([]float32{1, -2})))
	p64 := vector(1, -2)
	for _, p := range []*nn.Param{p32, p64} {
		tr, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, Optimizer: finetune.OptimizerAdamW, LR: 0.05, Quiet: true})
		require.NoError(t, err)
		for range 5 {
			_, err := tr.Step(paramTask(p), []int{0})
			require.NoError(t, err)
		}
	}
	got, want := p32.Value().Data().F64(), p64.Value().Data().F64()
	for i := range want {
		assert.InDelta(t, want[i], got[i], 1e-6)
	}
}
