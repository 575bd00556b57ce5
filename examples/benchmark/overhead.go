package main

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/gopeft/gopeft/trainabletokens"
)

type overheadFigure struct {
	v, k                   int
	merged, unmerged       time.Duration
	ratio, cpuRatio        float64
	aa, aaCPU              float64 // merged ÷ merged (A/A control)
	merge, unmerge         time.Duration
	fwdMerged, fwdUnmerged time.Duration // fused training forward
	fwdRatio               float64
}

type injectFigure struct {
	v              int
	inject, unload time.Duration
}

// sectionOverhead measures, for V ∈ {1,000, 30,522, 250,000}: cybertron's
// inference forward with an active unmerged adapter against the merged
// model (k = 10 and 1,000), Merge and Unmerge, and injection (New, which
// runs tying.Detect over the whole table) and Unload.
func sectionOverhead(s *summary) error {
	seqs := 2
	if opt.full {
		seqs = batchSize
	}
	fmt.Printf("\nAdapter overhead: cybertron inference forward (%d sequences × %d tokens, %d masked each), unmerged ÷ merged; merge, unmerge, injection\n",
		seqs, seqLen, masksPerSeq)
	for _, v := range []int{1000, mainVocab, 250000} {
		built := time.Now()
		m := newBERT(v, 1000, 1)
		terms := vocabTerms(v, 1000)
		batch := bertBatch(v, lastIDs(v, 10), func(id int) string { return terms[id] }, 42)[:seqs]
		w := bertWorkload(fmt.Sprint(v), m, batch)
		buildTime := time.Since(built)

		// Injection and unload, 3 times (median).
		var inj, unl []time.Duration
		for range 3 {
			runtime.GC()
			t0 := time.Now()
			tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: lastIDs(v, 10)}, "")
			if err != nil {
				return err
			}
			inj = append(inj, time.Since(t0))
			t0 = time.Now()
			if _, err := tm.Unload(); err != nil {
				return err
			}
			unl = append(unl, time.Since(t0))
		}
		s.inject = append(s.inject, injectFigure{v: v, inject: medianDur(inj), unload: medianDur(unl)})

		for _, k := range []int{10, 1000} {
			tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: lastIDs(v, k)}, "")
			if err != nil {
				return err
			}
			// Every timed run starts from a collected heap: cybertron's
			// forward allocates ~100 MB, and where a GC cycle lands is the
			// largest noise in this comparison.
			activate := func() error {
				runtime.GC()
				return tm.SetActive(trainabletokens.DefaultAdapterName)
			}
			merged := func() error {
				if err := tm.Merge(false); err != nil {
					return err
				}
				runtime.GC()
				return nil
			}
			vs := []variant{
				{name: "merged", setup: merged, teardown: tm.Unmerge, run: w.infer},
				{name: "unmerged", setup: activate, run: w.infer},
				// A/A control: the merged model again, to show the noise floor.
				{name: "merged again", setup: merged, teardown: tm.Unmerge, run: w.infer},
			}
			rs, err := interleave(vs, 1, 4*opt.reps)
			if err != nil {
				return err
			}
			f := overheadFigure{v: v, k: k, merged: rs[0].median(), unmerged: rs[1].median(),
				ratio: pairedRatio(rs[1], rs[0]), cpuRatio: pairedCPURatio(rs[1], rs[0]),
				aa: pairedRatio(rs[2], rs[0]), aaCPU: pairedCPURatio(rs[2], rs[0])}
			for i := range rs[0].samples {
				s.pooled = append(s.pooled, rs[1].samples[i].d.Seconds()/rs[0].samples[i].d.Seconds())
				s.pooledCPU = append(s.pooledCPU, rs[1].samples[i].cpu.Seconds()/rs[0].samples[i].cpu.Seconds())
				s.pooledAA = append(s.pooledAA, rs[2].samples[i].d.Seconds()/rs[0].samples[i].d.Seconds())
			}

			// The fused training forward (no backward): merged (frozen,
			// model's own head) against the live adapter (tied-logits op,
			// activations kept for the backward).
			fv := []variant{
				{name: "merged", setup: merged, teardown: tm.Unmerge, run: func() error { _, err := value(w.loss(nil)); return err }},
				{name: "unmerged", setup: activate, run: func() error {
					_, err := value(w.loss(tm.LogitsFunc(w.head)))
					return err
				}},
			}
			frs, err := interleave(fv, 1, opt.reps)
			if err != nil {
				return err
			}
			f.fwdMerged, f.fwdUnmerged, f.fwdRatio = frs[0].median(), frs[1].median(), pairedRatio(frs[1], frs[0])

			// Merge and unmerge: 21 of each.
			if err := activate(); err != nil {
				return err
			}
			var mt, ut []time.Duration
			for range 21 {
				t0 := time.Now()
				if err := tm.Merge(true); err != nil {
					return err
				}
				mt = append(mt, time.Since(t0))
				t0 = time.Now()
				if err := tm.Unmerge(); err != nil {
					return err
				}
				ut = append(ut, time.Since(t0))
			}
			f.merge, f.unmerge = medianDur(mt), medianDur(ut)
			if _, err := tm.Unload(); err != nil {
				return err
			}
			// Same work, measured without a clock: the heap objects each
			// forward allocates (cybertron builds one graph node per op).
			_, mallocsMerged := rs[0].medianAlloc()
			_, mallocsUnmerged := rs[1].medianAlloc()
			fmt.Printf("  V=%-7d k=%-5d inference merged %s, unmerged %s: ratio %.3f (CPU time %.3f; A/A control %.3f; allocations %d vs %d) | fused forward merged %s, live adapter %s: %.3f | merge %s, unmerge %s\n",
				v, k, ms(f.merged), ms(f.unmerged), f.ratio, f.cpuRatio, f.aa, mallocsMerged, mallocsUnmerged, ms(f.fwdMerged), ms(f.fwdUnmerged), f.fwdRatio, us(f.merge), us(f.unmerge))
			s.overhead = append(s.overhead, f)
		}
		last := s.inject[len(s.inject)-1]
		fmt.Printf("  V=%-7d injection (trainabletokens.New, incl. tying.Detect) %s, Unload %s (model built in %s)\n",
			v, ms(last.inject), ms(last.unload), buildTime.Round(time.Millisecond))
		m, w = nil, nil
		runtime.GC()
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1000) }

func lastLine(b []byte) string {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}
