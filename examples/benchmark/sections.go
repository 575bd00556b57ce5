package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers/adam"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/trainabletokens"
)

const mainVocab = 30522

// stepFigures are the figures of one training comparison.
type stepFigures struct {
	name                         string
	tokens                       int
	infer, fwd, fwdTrain, step   time.Duration
	full, graph                  time.Duration
	stepOverFwd, stepOverInfer   float64 // paired ratios
	fullOverStep, graphOverStep  float64
	stepAlloc, stepMallocs       uint64
	fullAlloc, graphAlloc        uint64
	haveFull, haveGraph, haveInf bool
}

func (f *stepFigures) tokensPerSecond() float64 { return float64(f.tokens) / f.step.Seconds() }

// runStepComparison interleaves, on one workload: cybertron inference,
// the fused forward of the frozen model, the trainable-tokens forward
// only, the trainable-tokens step, a full fine-tune step of the table and
// head (on a second copy of the model), and the graph path's step.
func runStepComparison(name string, w, wFull *workload, tm *trainabletokens.Model, withGraph, withInfer bool, profile string) (*stepFigures, error) {
	tt, err := newTTTrainer(w, tm)
	if err != nil {
		return nil, err
	}
	vs := []variant{
		{name: "fused forward, frozen model (forward-only)", setup: tm.Disable, teardown: tm.Enable, run: func() error { return inferenceForward(w) }},
		{name: "trainable tokens: training forward, no backward", run: tt.forwardOnly},
		{name: "trainable tokens: training step", run: tt.step},
	}
	f := &stepFigures{name: name, tokens: w.tokens}
	if wFull != nil {
		full, err := newFullTrainer(wFull)
		if err != nil {
			return nil, err
		}
		vs = append(vs, variant{name: "full fine-tune of table + head: training step", run: full.step})
		f.haveFull = true
	}
	if withInfer {
		vs = append(vs, variant{name: "cybertron inference forward", run: w.infer})
		f.haveInf = true
	}
	if withGraph {
		graph, err := newTTTrainer(w, tm, finetune.ForwardGraph)
		if err != nil {
			return nil, err
		}
		vs = append(vs, variant{name: "per-token spago graph (before): step", run: graph.step})
		f.haveGraph = true
	}
	rs, err := interleave(vs, 1, opt.reps)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\n%s: %d tokens per batch, %d rounds (medians)\n", name, w.tokens, opt.reps)
	fmt.Printf("  %-52s %12s %12s %12s\n", "variant", "time", "alloc", "mallocs")
	for _, r := range rs {
		a, m := r.medianAlloc()
		fmt.Printf("  %-52s %12s %12s %12d\n", r.name, ms(r.median()), mb(a), m)
	}
	f.fwd, f.fwdTrain, f.step = rs[0].median(), rs[1].median(), rs[2].median()
	f.stepOverFwd = pairedRatio(rs[2], rs[0])
	f.stepAlloc, f.stepMallocs = rs[2].medianAlloc()
	i := 3
	if f.haveFull {
		f.full, f.fullOverStep = rs[i].median(), pairedRatio(rs[i], rs[2])
		f.fullAlloc, _ = rs[i].medianAlloc()
		i++
	}
	if f.haveInf {
		f.infer, f.stepOverInfer = rs[i].median(), pairedRatio(rs[2], rs[i])
		i++
	}
	if f.haveGraph {
		f.graph, f.graphOverStep = rs[i].median(), pairedRatio(rs[i], rs[2])
		f.graphAlloc, _ = rs[i].medianAlloc()
	}
	fmt.Printf("  step ÷ forward-only %.2f; step ÷ training forward %.2f", f.stepOverFwd, pairedRatio(rs[2], rs[1]))
	if f.haveFull {
		fmt.Printf("; full fine-tune ÷ step %.2f", f.fullOverStep)
	}
	if f.haveInf {
		fmt.Printf("; step ÷ cybertron inference %.2f", f.stepOverInfer)
	}
	if f.haveGraph {
		fmt.Printf("; graph path ÷ fused %.1f", f.graphOverStep)
	}
	fmt.Printf("; %.0f training tokens/s\n", f.tokensPerSecond())
	if profile != "" {
		pf, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
		for range 10 {
			if err := tt.step(); err != nil {
				return nil, err
			}
		}
		pprof.StopCPUProfile()
		pf.Close()
		fmt.Printf("  CPU profile of 10 steps written to %s\n", profile)
	}
	return f, nil
}

func newSyntheticBERT(v, k int) (*workload, *trainabletokens.Model, error) {
	m := newBERT(v, k, 1)
	terms := vocabTerms(v, k)
	batch := bertBatch(v, lastIDs(v, k)[:min(k, 10)], func(id int) string { return terms[id] }, 42)
	w := bertWorkload(fmt.Sprintf("BERT V=%d", v), m, batch)
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: lastIDs(v, k)}, "")
	return w, tm, err
}

func sectionStep(s *summary) error {
	w, tm, err := newSyntheticBERT(mainVocab, 10)
	if err != nil {
		return err
	}
	terms := vocabTerms(mainVocab, 10)
	full := bertWorkload("BERT full", newBERT(mainVocab, 10, 1), bertBatch(mainVocab, lastIDs(mainVocab, 10), func(id int) string { return terms[id] }, 42))
	f, err := runStepComparison(fmt.Sprintf("BERT V=%d, hidden %d, %d layers, batch %d×%d, 80 masked, k=10", mainVocab, hidden, layers, batchSize, seqLen),
		w, full, tm, true, true, opt.cpuProf)
	if err != nil {
		return err
	}
	s.bert = f
	return nil
}

func sectionBART(s *summary) error {
	m := newBART(mainVocab, 1)
	ids := lastIDs(mainVocab, 10)
	w := bartWorkload("BART", m, bartBatch(mainVocab, ids, 43))
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: ids}, "")
	if err != nil {
		return err
	}
	full := bartWorkload("BART full", newBART(mainVocab, 1), bartBatch(mainVocab, ids, 43))
	f, err := runStepComparison(fmt.Sprintf("BART V=%d, d_model %d, 2+2 layers, batch %d × (%d source + %d target), k=10", mainVocab, hidden, batchSize, seqLen, bartTarget),
		w, full, tm, opt.full, true, "")
	if err != nil {
		return err
	}
	s.bart = f
	return nil
}

func sectionTiny(s *summary) error {
	dir, err := os.MkdirTemp("", "gopeft-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bm, _, err := models.TinyBERT(dir)
	if err != nil {
		return err
	}
	v := len(bm.Bert.Embeddings.Tokens.Weights)
	ids := lastIDs(v-1, 10) // the last row is left zero by cybertron's converter
	vocab := bm.Bert.Embeddings.Vocab
	bw := bertWorkload("bert-tiny", bm, bertBatch(v-1, ids, func(id int) string { t, _ := vocab.Term(id); return t }, 42))
	btm, err := trainabletokens.New(bm, trainabletokens.Config{TokenIndices: ids}, "")
	if err != nil {
		return err
	}
	f, err := runStepComparison("testdata bert-tiny (hidden 32, 2 layers), batch 8×64, 80 masked, k=10", bw, nil, btm, true, true, "")
	if err != nil {
		return err
	}
	s.tiny = append(s.tiny, f)

	am, _, err := models.TinyBART(dir)
	if err != nil {
		return err
	}
	av := len(am.Bart.Embeddings.Weights)
	aids := lastIDs(av, 10)
	aw := bartWorkload("bart-tiny", am, bartBatch(av, aids, 43))
	atm, err := trainabletokens.New(am, trainabletokens.Config{TokenIndices: aids}, "")
	if err != nil {
		return err
	}
	f, err = runStepComparison("testdata bart-tiny (d_model 32, 2+2 layers), batch 8 × (64 + 16), k=10", aw, nil, atm, true, true, "")
	if err != nil {
		return err
	}
	s.tiny = append(s.tiny, f)
	return nil
}

// adapterBytes returns the bytes of gradients and optimizer state held by
// the adapter's params (after a backward and a step).
func adapterBytes(ps []*nn.Param) (grad, state uint64) {
	for _, p := range ps {
		if p.HasGrad() {
			grad += uint64(p.Grad().Size()) * 4
		}
		if st, ok := p.State.(*finetune.AdamState); ok {
			state += uint64(len(st.ExpAvg)+len(st.ExpAvgSq)) * 8
		}
		if st, ok := p.State.(*adam.State); ok {
			for _, m := range []interface{ Size() int }{st.V, st.M, st.Buf1, st.Buf2, st.Buf3} {
				if m != nil {
					state += uint64(m.Size()) * 4
				}
			}
		}
	}
	return grad, state
}

func sectionMemory(s *summary) error {
	w, tm, err := newSyntheticBERT(mainVocab, 10)
	if err != nil {
		return err
	}
	tt, err := newTTTrainer(w, tm)
	if err != nil {
		return err
	}
	// Warm up, then one backward to count the gradients, one step for the
	// optimizer state.
	if err := tt.step(); err != nil {
		return err
	}
	if err := backwardOnce(w, tm); err != nil {
		return err
	}
	grad, _ := adapterBytes(tm.TrainableParams())
	for _, p := range tm.TrainableParams() {
		p.ZeroGrad()
	}
	_, state := adapterBytes(tm.TrainableParams())
	m := &memFigures{gradBytes: grad, stateBytes: state, k: 10}
	runs := 3
	m.peakTrain, m.liveTrain, err = peakHeap(func() error {
		for range runs {
			if err := tt.step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tm.Disable(); err != nil {
		return err
	}
	m.peakFused, m.liveFused, err = peakHeap(func() error {
		for range runs {
			if err := inferenceForward(w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tm.Enable(); err != nil {
		return err
	}
	m.peakInfer, m.liveInfer, err = peakHeap(w.infer)
	if err != nil {
		return err
	}
	fmt.Printf("\nMemory, BERT V=%d, k=10 (heap objects, sampled every 200 µs)\n", mainVocab)
	fmt.Printf("  adapter gradients %d B, Adam state %d B (k·dim·4 = %d B)\n", grad, state, 10*hidden*4)
	fmt.Printf("  peak heap: training step %s (live before %s); fused forward-only %s (live %s); cybertron inference %s (live %s)\n",
		mb(m.peakTrain), mb(m.liveTrain), mb(m.peakFused), mb(m.liveFused), mb(m.peakInfer), mb(m.liveInfer))
	s.mem = m
	return nil
}

type memFigures struct {
	k                               int
	gradBytes, stateBytes           uint64
	peakTrain, peakFused, peakInfer uint64
	liveTrain, liveFused, liveInfer uint64
}

func sectionFile(s *summary) error {
	dir, err := os.MkdirTemp("", "gopeft-bench-file-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("\nAdapter file size, BERT dim %d\n", hidden)
	for _, c := range []struct{ v, k int }{{mainVocab, 10}, {mainVocab, 100}, {mainVocab, 1000}, {250000, 100}} {
		v, k := c.v, c.k
		m := newBERT(v, k, 1)
		tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: lastIDs(v, k)}, "")
		if err != nil {
			return err
		}
		out := filepath.Join(dir, fmt.Sprint(v, "-", k))
		if err := tm.Save(out, "", trainabletokens.SaveOptions{BaseModelNameOrPath: "bert-base-uncased"}); err != nil {
			return err
		}
		st, err := os.Stat(filepath.Join(out, trainabletokens.WeightsFile))
		if err != nil {
			return err
		}
		cfg, err := os.Stat(filepath.Join(out, trainabletokens.ConfigFile))
		if err != nil {
			return err
		}
		// PEFT's key set holds one copy per wrapped module (the table and
		// the tied decoder): the payload is every copy's rows.
		copies, err := tensorCount(filepath.Join(out, trainabletokens.WeightsFile))
		if err != nil {
			return err
		}
		payload := copies * k * hidden * 4
		r := fileFigure{v: v, k: k, safetensors: st.Size(), config: cfg.Size(), payload: payload}
		fmt.Printf("  V=%-7d k=%-5d %s %d B, %d copies (÷ copies·k·dim·4 = %.4f), %s %d B\n", v, k, trainabletokens.WeightsFile, st.Size(),
			copies, float64(st.Size())/float64(payload), trainabletokens.ConfigFile, cfg.Size())
		s.files = append(s.files, r)
	}
	return nil
}

// tensorCount is the number of tensors in a safetensors file.
func tensorCount(file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	h, err := safetensors.ReadHeader(f, fi.Size(), file)
	if err != nil {
		return 0, err
	}
	return len(h.Tensors), nil
}

type fileFigure struct {
	v, k                int
	safetensors, config int64
	payload             int
}
