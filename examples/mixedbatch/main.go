// Command mixedbatch measures mixed-adapter batches: one fused inference
// pass over a batch of 8 samples where every sample uses a different
// Trainable Tokens adapter (trainabletokens.Model.MixedMaskedLMLogits and
// MixedConditionalGenerationLogits), against the same pass with one adapter
// for all 8 samples, and against what a user does without it: SetActive
// and one batch per adapter. It also checks that every sample's logits
// equal those of the sample run alone with its adapter active.
//
// The goal (issue 15): throughput with 8 different adapters within 10% of
// one adapter for all 8, i.e. a ratio of at least 0.90.
//
//	go run ./examples/mixedbatch            # BERT and BART, hidden 256
//	go run ./examples/mixedbatch -reps 30   # more repetitions, less noise
//
// Ratios are paired (median over rounds of the two variants' ratio in that
// round) and judged on process CPU time, which other processes on a shared
// machine disturb much less than wall time; the wall-time ratio is printed
// next to it.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/trainabletokens"
)

// config sizes the synthetic models and the batch.
type config struct {
	vocab, hidden, layers, heads, ffn int
	seqLen, batch, masks, adapterIDs  int
	reps                              int
	models                            string
}

func defaults() config {
	return config{vocab: 30522, hidden: 256, layers: 4, heads: 4, ffn: 1024,
		seqLen: 64, batch: 8, masks: 10, adapterIDs: 16, reps: 15, models: "bert,bart"}
}

func main() {
	cfg := defaults()
	flag.IntVar(&cfg.reps, "reps", cfg.reps, "timed repetitions of each variant (the median is reported)")
	flag.IntVar(&cfg.vocab, "vocab", cfg.vocab, "vocabulary size")
	flag.StringVar(&cfg.models, "models", cfg.models, "bert, bart or bert,bart")
	flag.Parse()
	ok, err := run(os.Stdout, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mixedbatch:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(2)
	}
}

// run measures the models in cfg.models and prints the figures; ok is
// false when a goal is missed.
func run(w io.Writer, cfg config) (ok bool, err error) {
	if cfg.reps < 1 || cfg.batch < 1 || cfg.vocab < cfg.batch*cfg.adapterIDs+10 {
		return false, fmt.Errorf("bad configuration %+v", cfg)
	}
	fmt.Fprintf(w, "mixed-adapter batches: %d samples, %d adapters of %d token ids each (overlapping), vocab %d, hidden %d, median of %d runs\n",
		cfg.batch, cfg.batch, cfg.adapterIDs, cfg.vocab, cfg.hidden, cfg.reps)
	ok = true
	for _, name := range []string{"bert", "bart"} {
		if !contains(cfg.models, name) {
			continue
		}
		var r result
		if name == "bert" {
			r, err = measureBERT(cfg)
		} else {
			r, err = measureBART(cfg)
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		ok = r.print(w, name) && ok
	}
	return ok, nil
}

func contains(list, name string) bool {
	for i := 0; i+len(name) <= len(list); i++ {
		if list[i:i+len(name)] == name && (i == 0 || list[i-1] == ',') && (i+len(name) == len(list) || list[i+len(name)] == ',') {
			return true
		}
	}
	return false
}

// result holds the median seconds per batch of each variant.
type result struct {
	mixed, same, perAdapter float64
	// wallRatio and cpuRatio are the paired throughput ratios mixed ÷ one
	// adapter on wall time and on process CPU time.
	wallRatio, cpuRatio float64
	// plain is the batch with one adapter active and no per-sample rows
	// (the ordinary fused forward); plainWall and plainCPU are the paired
	// throughput ratios mixed ÷ plain.
	plain, plainWall, plainCPU float64
	samples                    int
	// maxDiff is the largest |mixed − alone| over every logit.
	maxDiff float64
}

const goalRatio = 0.90

func (r result) print(w io.Writer, model string) bool {
	tp := func(sec float64) float64 { return float64(r.samples) / sec }
	verdict := "PASS"
	if r.cpuRatio < goalRatio || r.plainCPU < goalRatio {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d different adapters in one batch: %8.1f samples/s (%.2f ms/batch)\n", model, r.samples, tp(r.mixed), 1e3*r.mixed)
	fmt.Fprintf(w, "%s: one adapter for all %d:           %8.1f samples/s (%.2f ms/batch)\n", model, r.samples, tp(r.same), 1e3*r.same)
	fmt.Fprintf(w, "%s: one adapter active, plain batch:    %8.1f samples/s (%.2f ms/batch)\n", model, tp(r.plain), 1e3*r.plain)
	fmt.Fprintf(w, "%s: SetActive + one batch per adapter: %8.1f samples/s (%.2f ms for %d batches)\n", model, tp(r.perAdapter), 1e3*r.perAdapter, r.samples)
	fmt.Fprintf(w, "%s: mixed / one-adapter throughput = %.3f (vs plain batch %.3f) on CPU time (goal >= %.2f: %s); wall time %.3f (%.3f), noisier on a shared machine\n",
		model, r.cpuRatio, r.plainCPU, goalRatio, verdict, r.wallRatio, r.plainWall)
	same := "FAIL"
	if r.maxDiff <= 1e-6 {
		same = "PASS"
	}
	fmt.Fprintf(w, "%s: max |mixed - each sample alone with its adapter active| = %g (goal <= 1e-6: %s)\n", model, r.maxDiff, same)
	return verdict == "PASS" && same == "PASS"
}

// timing holds one variant's wall and process CPU seconds per round.
type timing struct{ wall, cpu []float64 }

// timeAll runs the variants interleaved reps times, the order rotated each
// round (spreading machine noise and order effects evenly), and returns
// each one's wall and CPU seconds per round.
func timeAll(reps int, fns ...func() error) ([]timing, error) {
	for _, f := range fns { // warm-up
		if err := f(); err != nil {
			return nil, err
		}
	}
	ts := make([]timing, len(fns))
	for r := range reps {
		for j := range fns {
			i := (j + r) % len(fns)
			t0, c0 := time.Now(), cpuTime()
			if err := fns[i](); err != nil {
				return nil, err
			}
			ts[i].wall = append(ts[i].wall, time.Since(t0).Seconds())
			ts[i].cpu = append(ts[i].cpu, (cpuTime() - c0).Seconds())
		}
	}
	return ts, nil
}

// cpuTime is the process's user + system CPU time, which other processes
// on a shared machine disturb much less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}

// pairedRatio is the median over rounds of a[i]/b[i]: each round's two
// runs are close in time, so slow drifts of the machine's load cancel.
func pairedRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

// newResult summarises the three variants' timings.
func newResult(ts []timing, samples int, maxDiff float64) result {
	return result{
		mixed: median(ts[0].wall), same: median(ts[1].wall), perAdapter: median(ts[2].wall),
		// throughput ratio mixed/same = time ratio same/mixed
		plain:     median(ts[3].wall),
		wallRatio: pairedRatio(ts[1].wall, ts[0].wall),
		cpuRatio:  pairedRatio(ts[1].cpu, ts[0].cpu),
		plainWall: pairedRatio(ts[3].wall, ts[0].wall),
		plainCPU:  pairedRatio(ts[3].cpu, ts[0].cpu),
		samples:   samples, maxDiff: maxDiff,
	}
}

// adapters attaches cfg.batch adapters "a0".."a7" to m on overlapping id
// ranges at the end of the vocabulary (each shares half its ids with the
// next), each with rows of its own; first is the lowest of their ids.
func adapters(m nn.Model, cfg config, rng *rand.Rand) (tm *trainabletokens.Model, first int, names []string, err error) {
	first = cfg.vocab - cfg.batch*cfg.adapterIDs
	for a := 0; a < cfg.batch; a++ {
		ids := make([]int, cfg.adapterIDs)
		for i := range ids {
			ids[i] = first + a*cfg.adapterIDs/2 + i // half overlaps the next adapter
		}
		name := fmt.Sprintf("a%d", a)
		if a == 0 {
			tm, err = trainabletokens.New(m, trainabletokens.Config{TokenIndices: ids}, name)
		} else {
			err = tm.AddAdapter(name, trainabletokens.Config{TokenIndices: ids})
		}
		if err != nil {
			return nil, 0, nil, err
		}
		ps, err := tm.Rows(name, "")
		if err != nil {
			return nil, 0, nil, err
		}
		for _, p := range ps {
			d := mat.Data[float32](p.Value())
			for j := range d {
				d[j] += float32(0.05 * rng.NormFloat64())
			}
		}
		names = append(names, name)
	}
	return tm, first, names, tm.Sync()
}

func measureBERT(cfg config) (result, error) {
	rng := rand.New(rand.NewPCG(1, 15))
	terms := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for len(terms) < cfg.vocab {
		terms = append(terms, fmt.Sprintf("w%d", len(terms)))
	}
	bc := bert.Config{HiddenSize: cfg.hidden, EmbeddingsSize: cfg.hidden, IntermediateSize: cfg.ffn,
		NumAttentionHeads: cfg.heads, NumHiddenLayers: cfg.layers, MaxPositionEmbeddings: 512,
		TypeVocabSize: 2, VocabSize: cfg.vocab, HiddenAct: "gelu"}
	b := bert.New[float32](bc)
	b.Embeddings.Vocab = vocabulary.New(terms)
	m := bert.NewModelForMaskedLM[float32](b)
	randomize(m, rng)
	tie(m.Layers[3].(*linear.Model), b.Embeddings.Tokens.Weights, cfg.hidden)
	tm, first, names, err := adapters(m, cfg, rng)
	if err != nil {
		return result{}, err
	}
	batch := make([]finetune.MaskedInput, cfg.batch)
	for s := range batch {
		toks := []string{"[CLS]"}
		for len(toks) < cfg.seqLen-1 {
			id := 5 + rng.IntN(cfg.vocab-5)
			if rng.Float64() < 0.2 { // a fifth of the words are the sample's adapter's
				id = first + s*cfg.adapterIDs/2 + rng.IntN(cfg.adapterIDs)
			}
			toks = append(toks, terms[id])
		}
		toks = append(toks, "[SEP]")
		var pos []int
		for _, p := range rng.Perm(cfg.seqLen - 2)[:cfg.masks] {
			toks[p+1] = "[MASK]"
			pos = append(pos, p+1)
		}
		batch[s] = finetune.MaskedInput{Tokens: toks, Positions: pos}
	}
	same := make([]string, cfg.batch)
	for i := range same {
		same[i] = names[0]
	}
	ds, err := timeAll(cfg.reps,
		func() error { _, err := tm.MixedMaskedLMLogits(batch, names); return err },
		func() error { _, err := tm.MixedMaskedLMLogits(batch, same); return err },
		func() error { _, err := bertAlone(tm, m, batch, names); return err },
		// a0 active, the plain fused batch with no per-sample rows at all
		func() error {
			return tm.Do(func() error { _, err := finetune.MixedMaskedLMLogits(m, batch, nil); return err })
		})
	if err != nil {
		return result{}, err
	}
	got, err := tm.MixedMaskedLMLogits(batch, names)
	if err != nil {
		return result{}, err
	}
	want, err := bertAlone(tm, m, batch, names)
	if err != nil {
		return result{}, err
	}
	return newResult(ds, cfg.batch, maxDiff(want, got)), nil
}

func measureBART(cfg config) (result, error) {
	rng := rand.New(rand.NewPCG(2, 15))
	bc := bart.Config{VocabSize: cfg.vocab, DModel: cfg.hidden, EncoderLayers: cfg.layers / 2, DecoderLayers: cfg.layers / 2,
		EncoderAttentionHeads: cfg.heads, DecoderAttentionHeads: cfg.heads, EncoderFFNDim: cfg.ffn, DecoderFFNDim: cfg.ffn,
		MaxPositionEmbeddings: 512, ActivationFunction: "gelu", BosTokenID: 0, PadTokenID: 1, EosTokenID: 2,
		DecoderStartTokenID: 2, NormalizeEmbedding: true, MaxLength: 64, NumBeams: 1}
	bc.Cybertron.PositionalEncoderOffset = 2
	m := bart.NewModelForConditionalGeneration[float32](bart.New[float32](bc))
	randomize(m, rng)
	tie(m.Projection, m.Bart.Embeddings.Weights, cfg.hidden)
	tm, first, names, err := adapters(m, cfg, rng)
	if err != nil {
		return result{}, err
	}
	draw := func(s int) int {
		if rng.Float64() < 0.2 {
			return first + s*cfg.adapterIDs/2 + rng.IntN(cfg.adapterIDs)
		}
		return 3 + rng.IntN(first-3)
	}
	var srcs, decs [][]int
	for s := 0; s < cfg.batch; s++ {
		src := []int{0}
		for len(src) < cfg.seqLen-1 {
			src = append(src, draw(s))
		}
		dec := []int{2, 0}
		for len(dec) < 16 {
			dec = append(dec, draw(s))
		}
		srcs, decs = append(srcs, append(src, 2)), append(decs, dec)
	}
	same := make([]string, cfg.batch)
	for i := range same {
		same[i] = names[0]
	}
	ds, err := timeAll(cfg.reps,
		func() error { _, err := tm.MixedConditionalGenerationLogits(srcs, decs, names); return err },
		func() error { _, err := tm.MixedConditionalGenerationLogits(srcs, decs, same); return err },
		func() error { _, err := bartAlone(tm, m, srcs, decs, names); return err },
		func() error {
			return tm.Do(func() error { _, err := finetune.MixedConditionalGenerationLogits(m, srcs, decs, nil); return err })
		})
	if err != nil {
		return result{}, err
	}
	got, err := tm.MixedConditionalGenerationLogits(srcs, decs, names)
	if err != nil {
		return result{}, err
	}
	want, err := bartAlone(tm, m, srcs, decs, names)
	if err != nil {
		return result{}, err
	}
	return newResult(ds, cfg.batch, maxDiff(want, got)), nil
}

// bertAlone runs each sample alone with its adapter active (SetActive, then
// the ordinary fused forward with the adapter's LogitsFunc): what a user
// does without mixed batches, one batch per adapter.
func bertAlone(tm *trainabletokens.Model, m *bert.ModelForMaskedLM, batch []finetune.MaskedInput, names []string) ([]mat.Matrix, error) {
	defer tm.SetActive(names[0])
	out := m.Layers[3].(*linear.Model)
	var res []mat.Matrix
	for s, ex := range batch {
		if err := tm.SetActive(names[s]); err != nil {
			return nil, err
		}
		y, err := finetune.MaskedLMLogits(m, ex.Tokens, ex.Positions, tm.LogitsFunc(out))
		if err != nil {
			return nil, err
		}
		res = append(res, y.Value().(mat.Matrix))
	}
	return res, nil
}

func bartAlone(tm *trainabletokens.Model, m *bart.ModelForConditionalGeneration, srcs, decs [][]int, names []string) ([]mat.Matrix, error) {
	defer tm.SetActive(names[0])
	var res []mat.Matrix
	for s := range srcs {
		if err := tm.SetActive(names[s]); err != nil {
			return nil, err
		}
		y, err := finetune.ConditionalGenerationLogits(m, srcs[s], decs[s], tm.LogitsFunc(m.Projection))
		if err != nil {
			return nil, err
		}
		res = append(res, y.Value().(mat.Matrix))
	}
	return res, nil
}

func maxDiff(a, b []mat.Matrix) float64 {
	worst := 0.0
	if len(a) != len(b) {
		return math.Inf(1)
	}
	for i := range a {
		x, y := mat.Data[float32](a[i]), mat.Data[float32](b[i])
		if len(x) != len(y) {
			return math.Inf(1)
		}
		for j := range x {
			worst = math.Max(worst, math.Abs(float64(x[j])-float64(y[j])))
		}
	}
	return worst
}
