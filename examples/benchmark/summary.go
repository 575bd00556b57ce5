package main

import (
	"fmt"
	"strings"
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
	versus   *versusSummary

	pooled, pooledCPU, pooledAA []float64 // per-round inference ratios of every (V, k)
}

func goal(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// print writes the six figures of the issue as one table, and returns
// its rows (issue point, figure, value, goal).
func (s *summary) print() [][4]string {
	fmt.Printf("\n==== Summary (medians) ====\n")
	fmt.Printf("%-4s %-62s %-58s %s\n", "#", "figure", "value", "goal")
	var rows [][4]string
	defer func() {
		for _, r := range rows {
			fmt.Printf("%-4s %-62s %-58s %s\n", r[0], r[1], r[2], r[3])
		}
	}()
	row := func(n, what, v, g string) {
		if g == "" {
			g = "reported (no goal)"
		}
		rows = append(rows, [4]string{n, what, v, g})
	}
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
		// Flat in V: at each k, the largest V's time within 3× the
		// smallest's (timer noise at microseconds).
		flat := map[int][2]time.Duration{} // k → min, max of merge+unmerge over V
		for _, o := range s.overhead {
			t := o.merge + o.unmerge
			mm, ok := flat[o.k]
			if !ok {
				mm = [2]time.Duration{t, t}
			}
			flat[o.k] = [2]time.Duration{min(mm[0], t), max(mm[1], t)}
		}
		for _, o := range s.overhead {
			mm := flat[o.k]
			ok := mm[1] <= 3*mm[0]
			row("2", fmt.Sprintf("merge / unmerge, V=%d k=%d", o.v, o.k), us(o.merge)+" / "+us(o.unmerge),
				fmt.Sprintf("flat in V (max ÷ min over V %.1f ≤ 3): %s", float64(mm[1])/float64(mm[0]), goal(ok)))
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
		g := "" // the goal is the issue's, at its BERT configuration
		if f == s.bert {
			g = "≤ 2.0: " + goal(f.stepOverFwd <= 2.0)
		}
		row("3", f.name[:min(len(f.name), 40)]+": step ÷ forward-only", fmt.Sprintf("%.2f (%s ÷ %s)", f.stepOverFwd, ms(f.step), ms(f.fwd)), g)
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
		row("4", fmt.Sprintf("adapter gradients + Adam state, k=%d, dim %d", m.k, hidden), fmt.Sprintf("%d + %d B", m.gradBytes, m.stateBytes), fmt.Sprintf("O(k·dim), ≤ 8 row-matrices of %d B: %s", m.k*hidden*4, goal(m.gradBytes+m.stateBytes <= uint64(8*m.k*hidden*4))))
	}
	if f := s.bert; f != nil {
		row("4", "heap allocated per training step (BERT V=30,522)", fmt.Sprintf("%s, %d mallocs", mb(f.stepAlloc), f.stepMallocs), "")
	}
	if m := s.mem; m != nil {
		r1 := float64(m.peakTrain) / float64(m.peakInfer)
		r2 := float64(m.peakTrain) / float64(m.peakFused)
		row("4", "peak heap training ÷ cybertron inference", fmt.Sprintf("%.2f (%s ÷ %s)", r1, mb(m.peakTrain), mb(m.peakInfer)), "≤ 1.3: "+goal(r1 <= 1.3))
		row("4", "peak heap training ÷ fused forward-only", fmt.Sprintf("%.2f (÷ %s)", r2, mb(m.peakFused)), "≤ 1.3: "+goal(r2 <= 1.3))
	}
	if v := s.versus; v != nil {
		if v.ok == "" {
			row("5", "against PyTorch", "not measured", v.why)
		}
		for _, e := range v.envs {
			row("5", "torch setting tried (at "+v.sizes[0].size.name+")", e, "")
		}
		for _, f := range v.sizes {
			n := f.size.name
			row("5", n+": torch setting used (fastest at the first size)", f.env+"; "+f.kernel, "")
			row("5", n+": same work, speed ÷ torch ideal algorithm", fmt.Sprintf("%.2f (torch %.1f ms ÷ gopeft %s)", f.vsIdeal, f.torch["ideal_same"], ms(f.oursStep)), "≥ 1.0: "+goal(f.vsIdeal >= 1.0))
			row("5", n+": same work, speed ÷ torch PEFT's algorithm", fmt.Sprintf("%.2f (torch %.1f ms ÷ gopeft %s)", f.vsPEFT, f.torch["peft_same"], ms(f.oursStep)), "≥ 1.0: "+goal(f.vsPEFT >= 1.0))
			g := "none (reported)"
			if f.size.goalUsers > 0 {
				g = fmt.Sprintf("≥ %.1f: %s", f.size.goalUsers, goal(f.vsUsers >= f.size.goalUsers))
			}
			row("5", n+": speed ÷ PEFT as users run it (HF head, all positions)", fmt.Sprintf("%.2f (torch %.1f ms ÷ gopeft %s)", f.vsUsers, f.torch["users"], ms(f.oursStep)), g)
			row("5", n+": inference forward, speed ÷ torch eval forward", fmt.Sprintf("%.2f (torch %.1f ms ÷ gopeft %s)", f.inf, f.torch["eval_same"], ms(f.oursInfer)), "≥ 1.0: "+goal(f.inf >= 1.0))
			if p := v.peak(); p > 0 {
				ours := f.flopsStep / f.oursStep.Seconds() / 1e9
				th := f.flopsStep / (f.torch["ideal_same"] / 1000) / 1e9
				g := "none (reported)"
				if f.size.name == "BERT-S" {
					g = "≥ 45%: " + goal(ours/p >= 0.45)
				}
				row("5", n+": step GFLOP/s ÷ machine GEMM peak", fmt.Sprintf("gopeft %.0f%% (%.0f GFLOP/s), torch ideal %.0f%% (%.0f)", 100*ours/p, ours, 100*th/p, th), g)
			}
		}
		if v.ok != "" {
			row("5", "machine GEMM peak, 2048³ (torch.mm / gopeft)", fmt.Sprintf("%.0f / %.0f GFLOP/s", v.torchPeak, v.oursPeak), "measured in this run")
			worst := 0.0
			for i, sh := range v.shapes {
				r := sh.ours / sh.torch
				if i == 0 || r < worst {
					worst = r
				}
				row("5", "kernel ÷ OpenBLAS: "+sh.name, fmt.Sprintf("%.2f (%.0f ÷ %.0f GFLOP/s)", r, sh.ours, sh.torch), "≥ 0.8: "+goal(r >= 0.8))
			}
			row("5", "kernel ÷ OpenBLAS, worst step shape", fmt.Sprintf("%.2f", worst), "≥ 0.8: "+goal(worst >= 0.8))
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
	return rows
}

// markdown is the summary as a Markdown table, under a line saying when,
// where and how loaded the machine was (head), for the README.
func markdown(head string, rows [][4]string) []byte {
	var b strings.Builder
	b.WriteString(head + "\n\n| # | figure | value (both sides) | goal |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(r[0]), cell(r[1]), cell(r[2]), cell(r[3]))
	}
	return []byte(b.String())
}
