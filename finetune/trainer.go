package finetune

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/optimizers"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/nlpodyssey/spago/optimizers/sgd"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
)

// Optimizer names for Config.Optimizer.
const (
	// OptimizerAdam is torch.optim.Adam: bias correction, then eps, a step
	// count per param; Config.WeightDecay (default 0) is torch's L2 term,
	// added to the gradient.
	OptimizerAdam = "adam"
	// OptimizerAdamW is torch.optim.AdamW: Adam with decoupled weight
	// decay p ← p·(1 − lr·WeightDecay); WeightDecay defaults to torch's
	// 0.01 (AdamW without decay is OptimizerAdam).
	OptimizerAdamW = "adamw"
	// OptimizerSpagoAdam is spago's adam: eps added to √v before the bias
	// correction (torch's Adam with an eps 1/√(1−β2ᵗ) times larger: 31.6×
	// at step 1), one step count for all params. WeightDecay must be 0.
	OptimizerSpagoAdam = "spago-adam"
	// OptimizerSpagoAdamW is spago's adam with its weight decay
	// (Config.WeightDecay, required), scaled by spago's bias-corrected
	// step size.
	OptimizerSpagoAdamW = "spago-adamw"
	// OptimizerSGD is spago's sgd, with optional (Nesterov) momentum.
	OptimizerSGD = "sgd"
)

// Config configures a Trainer. Zero values mean the documented defaults.
type Config struct {
	// Params are the parameters to train, at learning rate LR. Only these
	// (and TokenParams) are stepped; duplicates are removed.
	Params []*nn.Param
	// TokenParams are parameters trained at TokenLR, typically the trainable
	// token rows. A param listed in both lists is a token param.
	TokenParams []*nn.Param

	// Optimizer is OptimizerAdam (default), OptimizerAdamW, OptimizerSGD,
	// OptimizerSpagoAdam or OptimizerSpagoAdamW.
	Optimizer string
	LR        float64 // learning rate of Params; default 1e-3
	TokenLR   float64 // learning rate of TokenParams; default LR

	Beta1, Beta2, Epsilon float64 // Adam; defaults 0.9, 0.999, 1e-8
	// WeightDecay is AdamW's decoupled decay (default 0.01, torch's), Adam's
	// L2 term (default 0) or spago AdamW's lambda (required).
	WeightDecay float64
	Momentum    float64 // SGD momentum
	Nesterov    bool    // SGD Nesterov momentum

	// MaxGradNorm, if positive, rescales the gradients of all stepped params
	// together so that their global L2 norm is at most MaxGradNorm.
	MaxGradNorm float64
	// ClipValue, if positive, clips every gradient element to
	// [-ClipValue, ClipValue] (before MaxGradNorm).
	ClipValue float64

	Epochs    int // passes over the task; default 1
	BatchSize int // examples per step; default 8 (the last batch may be smaller)
	MaxSteps  int // if positive, stop after this many steps in one Train call

	// Seed seeds the batch shuffling (PCG). The same seed, model, task and
	// config give the same batches and bit-identical losses and updates.
	Seed uint64
	// KeepOrder disables shuffling: batches follow the task's order.
	KeepOrder bool

	// Progress, if set, receives a plain line about every tenth of the run
	// (step, loss, measured time per step, ETA); Quiet silences it. The
	// trainer writes nothing otherwise (it used to draw a bar on a terminal
	// stderr by default). For a terminal progress bar pass
	// progress.New(os.Stderr, steps).Step (package progress) as OnStep.
	Quiet    bool
	Progress io.Writer

	// OnStep, if set, is called after every step, once the parameters are
	// updated and the gradients cleared (e.g. to copy trained rows into tied
	// tables). An error stops training and is returned by Train.
	OnStep func(StepInfo) error
}

// StepInfo describes one finished training step.
type StepInfo struct {
	Step     int     // 1-based, counted over the Trainer's life
	Epoch    int     // 0-based epoch of the Train call
	Batch    []int   // example indices of the step
	Loss     float64 // loss before the update
	GradNorm float64 // global L2 norm of the stepped params' gradients, before clipping
	Updated  int     // number of params stepped (Adam/AdamW step token params without a gradient too)
}

// Trainer steps a fixed set of parameters, synchronously. Adam and AdamW
// are gopeft's own implementation of torch.optim.Adam/AdamW (state
// AdamState in param.State, a step count per param). With them, every
// TokenParam is stepped at every step, with a zero gradient when the batch
// did not use its token: PEFT trains one trainable_tokens_delta tensor per
// table, whose absent rows get zero gradients and still move by their
// momentum and decay. Other params without a gradient are not stepped
// (torch skips params whose grad is None).
//
// The spago optimizers (sgd, spago-adam, spago-adamw) are called through
// their strategy's OptimizeParams for every param with a gradient, then
// IncExample (spago's optimizers.Optimizer.Optimize returns before its
// goroutines finish and races with IncExample); params without a gradient
// are not updated, their moments included. Optimizer state (param.State)
// persists across Train calls.
//
// A Trainer is not safe for concurrent use.
type Trainer struct {
	cfg    Config
	groups []*paramGroup
	rng    *rand.Rand
	steps  int

	cleanModel nn.Model
	cleaner    *gradCleaner
	// names labels the trained params in errors ("row 5 of
	// Bert.Embeddings.Tokens"), from the task's model.
	names map[*nn.Param]string
}

// paramGroup is a set of params stepped at one learning rate.
type paramGroup struct {
	params []*nn.Param
	lr     float64
	tokens bool // the TokenParams group
	// strategies by dtype ("float32", "float64"): spago's SGD is generic.
	strategies map[string]optimizers.OptimizationStrategy
}

// NewTrainer checks cfg, applies its defaults and returns a Trainer.
func NewTrainer(cfg Config) (*Trainer, error) {
	if cfg.Optimizer == "" {
		cfg.Optimizer = OptimizerAdam
	}
	if cfg.LR == 0 {
		cfg.LR = 1e-3
	}
	if cfg.TokenLR == 0 {
		cfg.TokenLR = cfg.LR
	}
	if cfg.Beta1 == 0 {
		cfg.Beta1 = 0.9
	}
	if cfg.Beta2 == 0 {
		cfg.Beta2 = 0.999
	}
	if cfg.Epsilon == 0 {
		cfg.Epsilon = 1e-8
	}
	if cfg.Optimizer == OptimizerAdamW && cfg.WeightDecay == 0 {
		cfg.WeightDecay = 0.01 // torch.optim.AdamW's default
	}
	if cfg.Epochs == 0 {
		cfg.Epochs = 1
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 8
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t := &Trainer{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	tokens, others, err := splitParams(cfg.Params, cfg.TokenParams)
	if err != nil {
		return nil, err
	}
	for _, g := range []*paramGroup{{params: others, lr: cfg.LR}, {params: tokens, lr: cfg.TokenLR, tokens: true}} {
		if len(g.params) > 0 {
			g.strategies = map[string]optimizers.OptimizationStrategy{}
			t.groups = append(t.groups, g)
		}
	}
	if len(t.groups) == 0 {
		return nil, fmt.Errorf("finetune: no parameters to train (Config.Params and Config.TokenParams are empty)")
	}
	return t, nil
}

func (c Config) check() error {
	switch c.Optimizer {
	case OptimizerAdam, OptimizerAdamW, OptimizerSGD, OptimizerSpagoAdam, OptimizerSpagoAdamW:
	default:
		return fmt.Errorf("finetune: unknown optimizer %q (want %q, %q, %q, %q or %q)", c.Optimizer,
			OptimizerAdam, OptimizerAdamW, OptimizerSGD, OptimizerSpagoAdam, OptimizerSpagoAdamW)
	}
	checks := []struct {
		ok   bool
		what string
		v    any
	}{
		{c.LR > 0 && !math.IsInf(c.LR, 0), "LR must be positive and finite", c.LR},
		{c.TokenLR > 0 && !math.IsInf(c.TokenLR, 0), "TokenLR must be positive and finite", c.TokenLR},
		{c.Beta1 >= 0 && c.Beta1 < 1, "Beta1 must be in [0, 1)", c.Beta1},
		{c.Beta2 >= 0 && c.Beta2 < 1, "Beta2 must be in [0, 1)", c.Beta2},
		{c.Epsilon > 0 && !math.IsInf(c.Epsilon, 0), "Epsilon must be positive and finite", c.Epsilon},
		{c.WeightDecay >= 0 && !math.IsInf(c.WeightDecay, 0), "WeightDecay must be >= 0 and finite", c.WeightDecay},
		{c.WeightDecay == 0 || c.Optimizer == OptimizerAdam || c.Optimizer == OptimizerAdamW || c.Optimizer == OptimizerSpagoAdamW,
			"WeightDecay needs Optimizer " + OptimizerAdam + ", " + OptimizerAdamW + " or " + OptimizerSpagoAdamW, c.WeightDecay},
		{c.WeightDecay != 0 || c.Optimizer != OptimizerSpagoAdamW, "Optimizer " + OptimizerSpagoAdamW + " needs a positive WeightDecay", c.WeightDecay},
		{c.Momentum >= 0 && c.Momentum < 1, "Momentum must be in [0, 1)", c.Momentum},
		{!c.Nesterov || c.Optimizer == OptimizerSGD, "Nesterov needs Optimizer " + OptimizerSGD, c.Nesterov},
		{c.MaxGradNorm >= 0, "MaxGradNorm must be >= 0", c.MaxGradNorm},
		{c.ClipValue >= 0, "ClipValue must be >= 0", c.ClipValue},
		{c.Epochs > 0, "Epochs must be positive", c.Epochs},
		{c.BatchSize > 0, "BatchSize must be positive", c.BatchSize},
		{c.MaxSteps >= 0, "MaxSteps must be >= 0", c.MaxSteps},
	}
	for _, k := range checks {
		if !k.ok {
			return fmt.Errorf("finetune: %s, got %v", k.what, k.v)
		}
	}
	return nil
}

// splitParams de-duplicates the two lists (a param in both is a token
// param) and checks every param.
func splitParams(params, tokenParams []*nn.Param) (tokens, others []*nn.Param, err error) {
	seen := map[*nn.Param]bool{}
	add := func(list []*nn.Param, name string, dst *[]*nn.Param) error {
		for i, p := range list {
			if p == nil || p.Matrix == nil {
				return fmt.Errorf("finetune: %s[%d] is nil", name, i)
			}
			if rows.DType(p.Matrix) == "" {
				return fmt.Errorf("finetune: %s[%d] has unsupported value type %T", name, i, p.Matrix)
			}
			if !seen[p] {
				seen[p] = true
				*dst = append(*dst, p)
			}
		}
		return nil
	}
	if err := add(tokenParams, "TokenParams", &tokens); err != nil {
		return nil, nil, err
	}
	if err := add(params, "Params", &others); err != nil {
		return nil, nil, err
	}
	return tokens, others, nil
}

// Params returns the de-duplicated params the Trainer steps.
func (t *Trainer) Params() []*nn.Param {
	var out []*nn.Param
	for _, g := range t.groups {
		out = append(out, g.params...)
	}
	return out
}

// Steps returns the number of steps taken so far.
func (t *Trainer) Steps() int { return t.steps }

// Train runs Epochs passes over the task (or MaxSteps steps), in batches of
// BatchSize shuffled examples, and returns the loss of every step. On error
// it returns the losses of the steps done so far.
func (t *Trainer) Train(task *Task) ([]float64, error) {
	if err := t.checkTask(task); err != nil {
		return nil, err
	}
	perEpoch := (task.Size + t.cfg.BatchSize - 1) / t.cfg.BatchSize
	total := perEpoch * t.cfg.Epochs
	if t.cfg.MaxSteps > 0 {
		total = min(total, t.cfg.MaxSteps)
	}
	cleaner, err := t.cleanerFor(task, true)
	if err != nil {
		return nil, err
	}
	bar := newProgress(t.cfg.Progress, t.cfg.Quiet, total)
	defer bar.finish()
	history := make([]float64, 0, total)
	order := make([]int, task.Size)
	for epoch := 0; len(history) < total; epoch++ {
		for i := range order {
			order[i] = i
		}
		if !t.cfg.KeepOrder {
			t.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for b := 0; b < perEpoch && len(history) < total; b++ {
			batch := order[b*t.cfg.BatchSize : min((b+1)*t.cfg.BatchSize, task.Size)]
			info, err := t.step(task, batch, epoch, cleaner)
			if err != nil {
				return history, err
			}
			history = append(history, info.Loss)
			bar.update(len(history), info.Loss)
			if t.cfg.OnStep != nil {
				if err := t.cfg.OnStep(info); err != nil {
					return history, fmt.Errorf("finetune: step %d: OnStep: %w", info.Step, err)
				}
			}
		}
	}
	return history, nil
}

// Step runs one training step on the task's examples at the given indices:
// loss, backward, clipping, update, gradient clean-up. OnStep is not called.
func (t *Trainer) Step(task *Task, batch []int) (StepInfo, error) {
	if err := t.checkTask(task); err != nil {
		return StepInfo{}, err
	}
	for _, i := range batch {
		if i < 0 || i >= task.Size {
			return StepInfo{}, invalidf("batch index %d out of range [0, %d)", i, task.Size)
		}
	}
	cleaner, err := t.cleanerFor(task, false)
	if err != nil {
		return StepInfo{}, err
	}
	return t.step(task, batch, 0, cleaner)
}

func (t *Trainer) checkTask(task *Task) error {
	if task == nil || task.Loss == nil {
		return fmt.Errorf("finetune: task or its Loss is nil")
	}
	if task.Size <= 0 {
		return invalidf("task has %d examples", task.Size)
	}
	for _, g := range t.groups {
		for _, p := range g.params {
			if !p.RequiresGrad() {
				return fmt.Errorf("finetune: a trained param (shape %v) does not require gradients: call SetRequiresGrad(true) on it", p.Shape())
			}
		}
	}
	return nil
}

// cleanerFor returns the gradient cleaner of the task's model, walking the
// model again when it changes or when fresh is set (a Train call: tables
// may have been replaced, e.g. by PrepareLoaded, since the last one).
func (t *Trainer) cleanerFor(task *Task, fresh bool) (*gradCleaner, error) {
	if fresh || t.cleaner == nil || t.cleanModel != task.Model {
		c := newGradCleaner(task.Model)
		if err := t.checkOwned(task.Model, c); err != nil {
			return nil, err
		}
		t.cleanModel, t.cleaner = task.Model, c
	}
	return t.cleaner, nil
}

// checkOwned refuses trained params that are not parameters of the task's
// model (for example the rows of an adapter injected into another model):
// they would never get a gradient and training would "succeed" with
// nothing updated.
func (t *Trainer) checkOwned(model nn.Model, c *gradCleaner) error {
	if model == nil {
		return nil
	}
	owned := map[*nn.Param]string{}
	for i, p := range c.params {
		owned[p] = c.paramPaths[i]
	}
	for i, e := range c.tables {
		for id, p := range e.Weights {
			owned[p] = fmt.Sprintf("row %d of %s", id, c.tablePaths[i])
		}
	}
	t.names = map[*nn.Param]string{}
	for _, g := range t.groups {
		for i, p := range g.params {
			name, ok := owned[p]
			t.names[p] = name
			if !ok {
				return fmt.Errorf("finetune: trained param %d (shape %v) is not a parameter of the task's model %T; train the params of the model the task runs (an adapter injected into another model?)", i, p.Shape(), model)
			}
		}
	}
	return nil
}

func (t *Trainer) step(task *Task, batch []int, epoch int, cleaner *gradCleaner) (StepInfo, error) {
	info := StepInfo{Step: t.steps + 1, Epoch: epoch, Batch: append([]int(nil), batch...)}
	loss, err := task.Loss(info.Batch)
	if err != nil {
		return info, fmt.Errorf("finetune: step %d: %w", info.Step, err)
	}
	if task.finish != nil {
		defer task.finish(loss) // the step's buffers are free when it returns
	}
	if loss == nil || loss.Value().Size() != 1 {
		return info, fmt.Errorf("finetune: step %d: the loss is not a scalar", info.Step)
	}
	info.Loss = loss.Value().Item().F64()
	if math.IsNaN(info.Loss) || math.IsInf(info.Loss, 0) {
		return info, fmt.Errorf("%w: step %d: loss is %v; nothing was updated", ErrNotFinite, info.Step, info.Loss)
	}
	if err := ag.Backward(loss); err != nil {
		return info, fmt.Errorf("finetune: step %d: backward: %w", info.Step, err)
	}
	var withGrad []*nn.Param
	for _, g := range t.groups {
		for _, p := range g.params {
			if p.HasGrad() {
				withGrad = append(withGrad, p)
			}
		}
	}
	for _, p := range withGrad {
		if ok, at := finiteMatrix(p.Grad().(mat.Matrix)); !ok {
			cleaner.clean()
			for _, q := range withGrad {
				q.ZeroGrad()
			}
			return info, fmt.Errorf("%w: step %d: the gradient of %s is NaN or Inf at element %d; nothing was updated", ErrNotFinite, info.Step, t.nameOf(p), at)
		}
	}
	info.GradNorm = clipGradients(withGrad, t.cfg.ClipValue, t.cfg.MaxGradNorm)
	// Token rows are small: keep their values, so that an update that
	// overflows leaves them as they were after the last finite step.
	var saved []mat.Matrix
	var savedParams []*nn.Param
	for _, g := range t.groups {
		if g.tokens {
			for _, p := range g.params {
				if p.HasGrad() {
					saved = append(saved, p.Value().(mat.Matrix).Clone())
					savedParams = append(savedParams, p)
				}
			}
		}
	}
	for _, g := range t.groups {
		n, err := t.update(g, info.Step)
		info.Updated += n
		if err != nil {
			return info, err
		}
	}
	for _, p := range withGrad {
		if ok, at := finiteMatrix(p.Value().(mat.Matrix)); !ok {
			for i, q := range savedParams {
				_ = rows.Copy(q.Value().(mat.Matrix), 0, saved[i], 0, saved[i].Size())
			}
			cleaner.clean()
			return info, fmt.Errorf("%w: step %d: the update made %s NaN or Inf at element %d (overflow?); the token rows keep their values from step %d", ErrNotFinite, info.Step, t.nameOf(p), at, info.Step-1)
		}
	}
	cleaner.clean()
	t.steps++
	return info, nil
}

// update steps every param of g that has a gradient (the strategy zeroes
// the gradient), then advances the strategies' example counters.
func (t *Trainer) update(g *paramGroup, step int) (int, error) {
	if t.cfg.Optimizer == OptimizerAdam || t.cfg.Optimizer == OptimizerAdamW {
		o := torchAdam{lr: g.lr, beta1: t.cfg.Beta1, beta2: t.cfg.Beta2, eps: t.cfg.Epsilon,
			weightDecay: t.cfg.WeightDecay, decoupled: t.cfg.Optimizer == OptimizerAdamW}
		for _, p := range g.params { // refuse before changing anything
			if _, ok := p.State.(*AdamState); p.State != nil && !ok {
				return 0, fmt.Errorf("finetune: step %d: %s: a param (shape %v) holds optimizer state %T from another optimizer; set its State to nil to restart it",
					step, t.cfg.Optimizer, p.Shape(), p.State)
			}
		}
		n := 0
		for _, p := range g.params {
			stepped, err := o.step(p, g.tokens)
			if err != nil {
				return n, fmt.Errorf("finetune: step %d: %s: %w", step, t.cfg.Optimizer, err)
			}
			if stepped {
				n++
			}
		}
		return n, nil
	}
	n := 0
	for _, p := range g.params {
		if !p.HasGrad() {
			continue
		}
		s, err := t.strategy(g, rows.DType(p.Matrix))
		if err != nil {
			return n, err
		}
		if err := s.OptimizeParams(p); err != nil {
			return n, fmt.Errorf("finetune: step %d: optimizer: %w", step, err)
		}
		n++
	}
	for _, s := range g.strategies {
		if a, ok := s.(interface{ IncExample() }); ok {
			a.IncExample()
		}
	}
	return n, nil
}

// strategy returns g's optimizer strategy for params of the given dtype,
// creating it on first use.
func (t *Trainer) strategy(g *paramGroup, dtype string) (optimizers.OptimizationStrategy, error) {
	if s, ok := g.strategies[dtype]; ok {
		return s, nil
	}
	var s optimizers.OptimizationStrategy
	switch t.cfg.Optimizer {
	case OptimizerSpagoAdam:
		s = adam.New(adam.NewConfig(g.lr, t.cfg.Beta1, t.cfg.Beta2, t.cfg.Epsilon))
	case OptimizerSpagoAdamW:
		s = adam.New(adam.NewAdamWConfig(g.lr, t.cfg.Beta1, t.cfg.Beta2, t.cfg.Epsilon, t.cfg.WeightDecay))
	case OptimizerSGD:
		c := sgd.NewConfig(g.lr, t.cfg.Momentum, t.cfg.Nesterov)
		if dtype == "float32" {
			s = sgd.New[float32](c)
		} else {
			s = sgd.New[float64](c)
		}
	}
	if s == nil {
		return nil, fmt.Errorf("finetune: no %s strategy for %s params", t.cfg.Optimizer, dtype)
	}
	g.strategies[dtype] = s
	return s, nil
}

// clipGradients clips every gradient element to [-value, value] (if value >
// 0), then rescales all gradients so their global L2 norm is at most
// maxNorm (if maxNorm > 0). It returns the global norm before clipping.
func clipGradients(params []*nn.Param, value, maxNorm float64) float64 {
	var sq float64
	for _, p := range params {
		sq += sumSquares(p.Grad().(mat.Matrix))
	}
	norm := math.Sqrt(sq)
	if value > 0 {
		for _, p := range params {
			p.Grad().(mat.Matrix).ClipInPlace(-value, value)
		}
	}
	if maxNorm > 0 {
		clipped := norm
		if value > 0 {
			sq = 0
			for _, p := range params {
				sq += sumSquares(p.Grad().(mat.Matrix))
			}
			clipped = math.Sqrt(sq)
		}
		if clipped > maxNorm {
			scale := maxNorm / (clipped + 1e-6)
			for _, p := range params {
				p.Grad().(mat.Matrix).ProdScalarInPlace(scale)
			}
		}
	}
	return norm
}

func sumSquares(m mat.Matrix) float64 {
	f32, f64, _ := rows.Floats(m)
	var s float64
	for _, v := range f32 {
		s += float64(v) * float64(v)
	}
	for _, v := range f64 {
		s += v * v
	}
	return s
}

// gradCleaner clears the gradients a step leaves on a model: every
// embedding table's (ZeroGrad also empties its gradient index) and every
// other param's that has one (params that require gradients but are not
// trained). Found once per model; rows are reached through their tables.
type gradCleaner struct {
	tables []*embedding.Model
	params []*nn.Param
	// paths name the params and tables for error messages.
	tablePaths, paramPaths []string
}

func newGradCleaner(model nn.Model) *gradCleaner {
	c := &gradCleaner{}
	if model == nil {
		return c
	}
	walk.Walk(model, func(n walk.Node) bool {
		switch v := n.Value.(type) {
		case *embedding.Model:
			c.tables = append(c.tables, v)
			c.tablePaths = append(c.tablePaths, n.Path)
			return false
		case *nn.Param:
			c.params = append(c.params, v)
			c.paramPaths = append(c.paramPaths, n.Path)
		}
		return true
	})
	return c
}

func (c *gradCleaner) clean() {
	for _, e := range c.tables {
		e.ZeroGrad()
	}
	for _, p := range c.params {
		if p.HasGrad() {
			p.ZeroGrad()
		}
	}
}

// nameOf labels a trained param for error messages.
func (t *Trainer) nameOf(p *nn.Param) string {
	if n := t.names[p]; n != "" {
		return n
	}
	return fmt.Sprintf("a param of shape %v", p.Shape())
}

// finiteMatrix reports whether every element of m is finite, and the
// index of the first that is not.
func finiteMatrix(m mat.Matrix) (bool, int) {
	f32, f64, _ := rows.Floats(m)
	for i, v := range f32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false, i
		}
	}
	for i, v := range f64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false, i
		}
	}
	return true, -1
}
