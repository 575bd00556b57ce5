package main

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// variant is one side of a comparison: setup and teardown run untimed
// around every timed run.
type variant struct {
	name            string
	setup, teardown func() error
	run             func() error
}

// sample is one timed run.
type sample struct {
	d, cpu         time.Duration // wall time, process CPU time
	alloc, mallocs uint64
}

// result holds every timed run of a variant.
type result struct {
	name    string
	samples []sample
}

func (r *result) median() time.Duration {
	ds := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		ds[i] = s.d
	}
	return medianDur(ds)
}

func (r *result) medianAlloc() (bytes, mallocs uint64) {
	a, m := make([]uint64, len(r.samples)), make([]uint64, len(r.samples))
	for i, s := range r.samples {
		a[i], m[i] = s.alloc, s.mallocs
	}
	slices.Sort(a)
	slices.Sort(m)
	return a[len(a)/2], m[len(m)/2]
}

func medianDur(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func medianFloat(xs []float64) float64 {
	xs = slices.Clone(xs)
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func timeOne(v variant) (sample, error) {
	if v.setup != nil {
		if err := v.setup(); err != nil {
			return sample{}, err
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	start := time.Now()
	err := v.run()
	d := time.Since(start)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", v.name, err)
	}
	if v.teardown != nil {
		if err := v.teardown(); err != nil {
			return sample{}, err
		}
	}
	return sample{d: d, cpu: cpu, alloc: after.TotalAlloc - before.TotalAlloc, mallocs: after.Mallocs - before.Mallocs}, nil
}

// interleave warms every variant up (warmup runs each), then runs reps
// rounds; each round runs every variant once, starting from a different
// variant every round, so slow drifts of the machine hit all variants
// alike. It returns one result per variant, in order.
func interleave(vs []variant, warmup, reps int) ([]*result, error) {
	out := make([]*result, len(vs))
	for i, v := range vs {
		out[i] = &result{name: v.name}
		for range warmup {
			if _, err := timeOne(v); err != nil {
				return nil, err
			}
		}
	}
	for r := range reps {
		for j := range vs {
			i := (r + j) % len(vs)
			s, err := timeOne(vs[i])
			if err != nil {
				return nil, err
			}
			out[i].samples = append(out[i].samples, s)
		}
	}
	return out, nil
}

// pairedRatio is the median over rounds of a[r]/b[r] (same round, so both
// saw the same machine state).
func pairedRatio(a, b *result) float64 {
	var rs []float64
	for i := range min(len(a.samples), len(b.samples)) {
		rs = append(rs, a.samples[i].d.Seconds()/b.samples[i].d.Seconds())
	}
	return medianFloat(rs)
}

// peakHeap runs fn while a goroutine samples the live heap
// (/memory/classes/heap/objects:bytes, HeapAlloc without stopping the
// world) every 200 µs, and returns the peak and the live heap before
// (after a GC).
func peakHeap(fn func() error) (peak, before uint64, err error) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	before = sample[0].Value.Uint64()
	var top atomic.Uint64
	top.Store(before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > top.Load() {
				top.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err = fn()
	close(stop)
	wg.Wait()
	return top.Load(), before, err
}

// pairedCPURatio is pairedRatio on process CPU time (user + system), which
// other processes on the machine disturb much less than wall time.
func pairedCPURatio(a, b *result) float64 {
	var rs []float64
	for i := range min(len(a.samples), len(b.samples)) {
		rs = append(rs, a.samples[i].cpu.Seconds()/b.samples[i].cpu.Seconds())
	}
	return medianFloat(rs)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
