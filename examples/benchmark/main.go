// Command benchmark measures gopeft's Trainable Tokens: adapter overhead at
// inference, merge/unmerge and injection cost, training step against
// forward-only and against full fine-tuning of the table, memory, adapter
// file size, and the comparison with the best PyTorch this machine offers
// (torch_versus.py, run when /usr/bin/python3 has torch): same work, PEFT
// as users run it, inference, GFLOP/s against the measured GEMM peak, at
// BERT-S, V = 250,000 and BERT-base size.
//
//	go run ./examples/benchmark            # quick run, ~10 minutes on 2 cores
//	go run ./examples/benchmark -full      # more repetitions, larger inference batches
//	go run ./examples/benchmark -only step,torch
//	go run ./examples/benchmark -only step -cpuprofile step.prof   # then: go tool pprof -top step.prof
//
// Every comparison runs its variants interleaved in one process (round r
// starts with variant r mod n), after one warm-up run of each, and reports
// medians; ratios are medians of same-round ratios. Models are synthetic
// (cybertron's bert.New / bart.New with random weights, the output
// projection a copy of the token table), plus the embedded tiny models.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/gemm"
)

type options struct {
	full      bool
	reps      int
	only      map[string]bool
	python    string
	torchReps int
	cpuProf   string
	sizes     map[string]bool
	markdown  string
}

var opt options

func main() {
	full := flag.Bool("full", false, "full run: more repetitions and the whole batch for cybertron inference (slower)")
	reps := flag.Int("reps", 0, "timed rounds per comparison (default 5 quick, 11 full)")
	only := flag.String("only", "", "comma-separated sections to run: tiny,step,bart,memory,overhead,file,torch (default all)")
	python := flag.String("python", "/usr/bin/python3", "Python with torch for the PyTorch reference (\"\" to skip)")
	sizes := flag.String("sizes", "", "comma-separated sizes of the PyTorch comparison: BERT-S,V=250k,BERT-base (default all)")
	cpuProf := flag.String("cpuprofile", "", "write a CPU profile of the BERT trainable-tokens steps to this file")
	md := flag.String("markdown", "", "also write the summary as a Markdown table (with the date, CPU and load) to this file")
	flag.Parse()
	opt = options{full: *full, reps: *reps, python: *python, cpuProf: *cpuProf, markdown: *md, only: map[string]bool{}}
	if opt.reps == 0 {
		opt.reps = 5
		if opt.full {
			opt.reps = 11
		}
	}
	opt.sizes = map[string]bool{}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opt.sizes[s] = true
		}
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opt.only[s] = true
		}
	}
	start := time.Now()
	fmt.Printf("gopeft benchmark: %s, GOMAXPROCS=%d, %s, %d rounds per comparison; %s UTC; load average %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), cpuName(), opt.reps, start.UTC().Format("2006-01-02 15:04"), loadAvg())
	loadStart := loadAvg()
	rows, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
	took, loadEnd := time.Since(start).Round(time.Second), loadAvg()
	fmt.Printf("\ntotal %s; load average at the end %s (1, 5, 15 min; %d cores)\n", took, loadEnd, runtime.NumCPU())
	if opt.markdown != "" {
		head := fmt.Sprintf("Measured %s UTC on %q (%d vCPUs, float32 GEMM path %s; GOMAXPROCS=%d), %s, in %s: load average (1, 5, 15 min) %s at the start and %s at the end.",
			start.UTC().Format("2006-01-02 15:04"), cpuName(), runtime.NumCPU(), gemm.Path(), runtime.GOMAXPROCS(0), runtime.Version(), took, loadStart, loadEnd)
		if err := atomicfile.WriteFile(opt.markdown, markdown(head, rows), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchmark:", err)
			os.Exit(1)
		}
	}
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute load averages: how busy
// the machine was around the measurement.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func want(section string) bool { return len(opt.only) == 0 || opt.only[section] }

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func run() ([][4]string, error) {
	var s summary
	steps := []struct {
		name string
		fn   func(*summary) error
	}{
		{"tiny", sectionTiny},
		{"step", sectionStep},
		{"bart", sectionBART},
		{"memory", sectionMemory},
		{"overhead", sectionOverhead},
		{"file", sectionFile},
		{"torch", sectionVersus},
	}
	for _, st := range steps {
		if !want(st.name) {
			continue
		}
		if err := st.fn(&s); err != nil {
			return nil, fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return s.print(), nil
}
