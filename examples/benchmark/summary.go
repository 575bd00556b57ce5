package main

import (
	"fmt"
	"time"
)

type summary struct {
	tiny     []*stepFigures
	bert     *stepFigures
	bart     *stepFigures
	mem      *memFigures
	overhead []overheadFigure
	inject   []injectFigure
	files    []fileFigure
	torch    *torchFigure

	pooled, pooledCPU, pooledAA []float64 // per-round inference ratios of every (V, k)
}

func goal(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// print writes the six figures of the issue as one table.
func (s *summary) print() {
	fmt.Printf("\n==== Summary (medians) ====\n")
	fmt.Printf("%-4s %-62s %-34s %s\n", "#", "figure", "value", "goal")
	row := func(n, what, v, g string) { fmt.Printf("%-4s %-62s %-34s %s\n", n, what, v, g) }
	if len(s.overhead) > 0 {
		worst, worstCPU := 0.0, 0.0
		for _, o := range s.overhead {
			row("1", fmt.Sprintf("inference, unmerged ÷ merged, V=%d k=%d", o.v, o.k), fmt.Sprintf("%.3f wall, %.3f CPU", o.ratio, o.cpuRatio), "")
			worst, worstCPU = max(worst, o.ratio), max(worstCPU, o.cpuRatio)
		}
		row("1", "worst of the above (wall / CPU)", fmt.Sprintf("%.3f / %.3f", worst, worstCPU), "≤ 1.03: "+goal(worst <= 1.03)+" / "+goal(worstCPU <= 1.03))
		p, pc, aa := medianFloat(s.pooled), medianFloat(s.pooledCPU), medianFloat(s.pooledAA)
		row("1", fmt.Sprintf("pooled over all V and k (%d rounds): wall / CPU", len(s.pooled)), fmt.Sprintf("%.3f / %.3f", p, pc), "≤ 1.03: "+goal(p <= 1.03 && pc <= 1.03))
		row("1", "A/A control (merged ÷ merged), pooled", fmt.Sprintf("%.3f", aa), "noise floor")
		for _, o := range s.overhead {
			row("2", fmt.Sprintf("merge / unmerge, V=%d k=%d", o.v, o.k), us(o.merge)+" / "+us(o.unmerge), "O(k·dim), flat in V")
		}
		for _, in := range s.inject {
			row("2", fmt.Sprintf("injection (New + tying.Detect) / Unload, V=%d", in.v), ms(in.inject)+" / "+ms(in.unload), "once, O(V·dim)")
		}
	}
	steps := append(append([]*stepFigures(nil), s.tiny...), s.bert, s.bart)
	for _, f := range steps {
		if f == nil {
			continue
		}
		row("3", f.name[:min(len(f.name), 40)]+": step ÷ forward-only", fmt.Sprintf("%.2f (%s ÷ %s)", f.stepOverFwd, ms(f.step), ms(f.fwd)), "≤ 2.5: "+goal(f.stepOverFwd <= 2.5))
		if f.haveFull {
			row("3", "  full fine-tune (table + head) ÷ trainable-tokens step", fmt.Sprintf("%.2f (%s)", f.fullOverStep, ms(f.full)), "")
		}
		if f.haveInf {
			row("3", "  step ÷ cybertron inference forward", fmt.Sprintf("%.2f (%s)", f.stepOverInfer, ms(f.infer)), "")
		}
		if f.haveGraph {
			row("3", "  per-token graph path ÷ fused step", fmt.Sprintf("%.1f (%s)", f.graphOverStep, ms(f.graph)), "")
		}
	}
	if m := s.mem; m != nil {
		row("4", fmt.Sprintf("adapter gradients + Adam state, k=%d, dim %d", m.k, hidden), fmt.Sprintf("%d + %d B", m.gradBytes, m.stateBytes), fmt.Sprintf("O(k·dim): %d B per row-matrix", m.k*hidden*4))
	}
	if f := s.bert; f != nil {
		row("4", "heap allocated per training step (BERT V=30,522)", fmt.Sprintf("%s, %d mallocs", mb(f.stepAlloc), f.stepMallocs), "")
	}
	if m := s.mem; m != nil {
		r1 := float64(m.peakTrain) / float64(m.peakInfer)
		r2 := float64(m.peakTrain) / float64(m.peakFused)
		row("4", "peak heap training ÷ cybertron inference", fmt.Sprintf("%.2f (%s ÷ %s)", r1, mb(m.peakTrain), mb(m.peakInfer)), "≤ 1.5: "+goal(r1 <= 1.5))
		row("4", "peak heap training ÷ fused forward-only", fmt.Sprintf("%.2f (÷ %s)", r2, mb(m.peakFused)), "≤ 1.5: "+goal(r2 <= 1.5))
	}
	if t := s.torch; t != nil {
		if t.ok {
			r := t.oursTPS / t.torchTPS
			row("5", "training tokens/s, gopeft ÷ PyTorch (PEFT by hand)", fmt.Sprintf("%.2f (%.0f ÷ %.0f)", r, t.oursTPS, t.torchTPS), "≥ 0.5: "+goal(r >= 0.5))
		} else {
			row("5", "training tokens/s against PyTorch", "not measured", t.why)
		}
	}
	for _, f := range s.files {
		r := float64(f.safetensors) / float64(f.payload)
		g := ""
		if f.k >= 100 {
			g = "≤ 1.01: " + goal(r <= 1.01)
		}
		row("6", fmt.Sprintf("adapter file ÷ copies·k·dim·4, V=%d k=%d", f.v, f.k), fmt.Sprintf("%.4f (%d B)", r, f.safetensors), g)
	}
	_ = time.Second
}
