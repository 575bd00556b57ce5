package main

// The comparison against the best PyTorch this machine offers
// (torch_versus.py): same work (head at the masked positions; PEFT's
// algorithm and the ideal one), PEFT as users run it (HF head at every
// position), and the inference forward, at BERT-S, V = 250,000 and
// BERT-base size; GFLOP/s against the machine's GEMM peak measured in the
// same run (torch.mm and our kernel); our kernel against OpenBLAS on the
// step's product shapes.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/gemm"
	"github.com/gopeft/gopeft/trainabletokens"
)

// versusSize is one model size of the comparison, with its goals (0: the
// figure is reported without a goal).
type versusSize struct {
	name      string
	v         int
	sz        bertSize
	goalUsers float64
}

var versusSizes = []versusSize{
	{"BERT-S", mainVocab, bertS, 2.0},
	{"V=250k", 250000, bertS, 0},
	{"BERT-base", mainVocab, bertBase, 0},
}

// torchEnv is one OpenBLAS setting tried for torch.
type torchEnv struct {
	name string
	env  []string
}

// torchRun is the parsed output of one torch_versus.py process.
type torchRun struct {
	Torch   string                        `json:"torch"`
	Threads int                           `json:"threads"`
	Env     map[string]string             `json:"env"`
	Blas    []map[string]any              `json:"blas"`
	MS      map[string]float64            `json:"ms"`
	Peak    float64                       `json:"peak_gflops"`
	Shapes  map[string]map[string]float64 `json:"shapes"`
}

// versusFigure holds one size's results.
type versusFigure struct {
	size                          versusSize
	env                           string // the OpenBLAS setting used (fastest)
	kernel                        string // what threadpoolctl reported for it
	oursStep, oursInfer           time.Duration
	torch                         map[string]float64 // medians, ms
	vsIdeal, vsPEFT, vsUsers, inf float64            // torch time ÷ ours, medians of paired ratios
	flopsStep, flopsInfer         float64
}

type versusSummary struct {
	ok, why   string
	envs      []string // each setting with its kernel and time
	torchPeak float64
	oursPeak  float64
	sizes     []*versusFigure
	shapes    []shapeFigure
	jemalloc  bool
	best      int    // index of the fastest torch setting (found at the first size)
	kernel    string // threadpoolctl's report for it
}

type shapeFigure struct {
	name        string
	ours, torch float64 // GFLOP/s
}

func (v *versusSummary) peak() float64 { return max(v.torchPeak, v.oursPeak) }

const jemallocPath = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

// torchEnvs are the OpenBLAS settings tried: the environment as it is,
// without any OPENBLAS_* variable (OpenBLAS detects the CPU), and with
// OpenBLAS's AVX-512 kernels asked for by name. Only the torch
// subprocess's environment changes.
func torchEnvs() ([]torchEnv, bool) {
	base := os.Environ()
	var clean []string
	for _, e := range base {
		if !strings.HasPrefix(e, "OPENBLAS_") && !strings.HasPrefix(e, "OMP_WAIT_POLICY=") && !strings.HasPrefix(e, "LD_PRELOAD=") {
			clean = append(clean, e)
		}
	}
	var inherited []string
	for _, e := range base {
		if !strings.HasPrefix(e, "LD_PRELOAD=") {
			inherited = append(inherited, e)
		}
	}
	_, err := os.Stat(jemallocPath)
	je := err == nil
	add := func(env []string) []string {
		env = append([]string(nil), env...)
		if je {
			env = append(env, "LD_PRELOAD="+jemallocPath)
		}
		return env
	}
	var inh []string
	for _, e := range inherited {
		if strings.HasPrefix(e, "OPENBLAS_") || strings.HasPrefix(e, "OMP_") {
			inh = append(inh, e)
		}
	}
	sort.Strings(inh)
	name := "inherited (" + strings.Join(inh, " ") + ")"
	if len(inh) == 0 {
		name = "inherited (no OPENBLAS_*)"
	}
	// OpenMP's threads spin while they wait; on a shared machine passive
	// waiting can be faster, so that is tried too.
	return []torchEnv{
		{name, add(inherited)},
		{"OPENBLAS_* unset", add(clean)},
		{"OPENBLAS_CORETYPE=SkylakeX", add(append(clean, "OPENBLAS_CORETYPE=SkylakeX"))},
		{"OPENBLAS_* unset, OMP_WAIT_POLICY=PASSIVE", add(append(clean, "OMP_WAIT_POLICY=PASSIVE"))},
	}, je
}

// runTorch runs torch_versus.py for a size with the given variants.
func runTorch(script string, env torchEnv, sz versusSize, variants string, rounds int, shapes string) (*torchRun, error) {
	args := []string{script, "--vocab", fmt.Sprint(sz.v), "--hidden", fmt.Sprint(sz.sz.hidden),
		"--layers", fmt.Sprint(sz.sz.layers), "--heads", fmt.Sprint(sz.sz.heads), "--intermediate", fmt.Sprint(sz.sz.intermediate),
		"--seq", fmt.Sprint(seqLen), "--batch", fmt.Sprint(batchSize), "--masks", fmt.Sprint(masksPerSeq),
		"--k", "10", "--threads", fmt.Sprint(runtime.GOMAXPROCS(0)), "--rounds", fmt.Sprint(rounds), "--variants", variants}
	if shapes != "" {
		args = append(args, "--shapes", shapes)
	}
	cmd := exec.Command(opt.python, args...)
	cmd.Env = env.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("torch_versus.py (%s, %s): %v: %s", sz.name, env.name, err, lastLine(stderr.Bytes()))
	}
	var r torchRun
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		return nil, fmt.Errorf("torch_versus.py output %q: %w", lastLine(out), err)
	}
	return &r, nil
}

// torchServer is a torch_versus.py process in --serve mode: it has built
// the model and warmed every variant up, and runs one variant per request,
// so torch's runs interleave with ours one by one.
type torchServer struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	ready torchRun
}

func startTorch(script string, env torchEnv, sz versusSize, variants string) (*torchServer, error) {
	args := []string{script, "--serve", "--vocab", fmt.Sprint(sz.v), "--hidden", fmt.Sprint(sz.sz.hidden),
		"--layers", fmt.Sprint(sz.sz.layers), "--heads", fmt.Sprint(sz.sz.heads), "--intermediate", fmt.Sprint(sz.sz.intermediate),
		"--seq", fmt.Sprint(seqLen), "--batch", fmt.Sprint(batchSize), "--masks", fmt.Sprint(masksPerSeq),
		"--k", "10", "--threads", fmt.Sprint(runtime.GOMAXPROCS(0)), "--variants", variants}
	cmd := exec.Command(opt.python, args...)
	cmd.Env = env.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting torch_versus.py: %w", err)
	}
	s := &torchServer{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	s.out.Buffer(make([]byte, 1<<20), 1<<20)
	if !s.out.Scan() {
		in.Close()
		cmd.Wait()
		return nil, fmt.Errorf("torch_versus.py (%s, %s) did not start: %s", sz.name, env.name, lastLine(stderr.Bytes()))
	}
	if err := json.Unmarshal(s.out.Bytes(), &s.ready); err != nil {
		s.close()
		return nil, fmt.Errorf("torch_versus.py said %q: %w", s.out.Text(), err)
	}
	return s, nil
}

// run times one run of a variant in the torch process.
func (s *torchServer) run(variant string) (time.Duration, error) {
	if _, err := fmt.Fprintln(s.in, variant); err != nil {
		return 0, fmt.Errorf("torch_versus.py: %w", err)
	}
	if !s.out.Scan() {
		return 0, fmt.Errorf("torch_versus.py stopped answering (%v)", s.out.Err())
	}
	var r struct {
		MS    float64 `json:"ms"`
		Error string  `json:"error"`
	}
	if err := json.Unmarshal(s.out.Bytes(), &r); err != nil || r.Error != "" {
		return 0, fmt.Errorf("torch_versus.py answered %q (%v)", s.out.Text(), err)
	}
	return time.Duration(r.MS * float64(time.Millisecond)), nil
}

func (s *torchServer) close() {
	s.in.Close()
	s.cmd.Wait()
}

// blasKernel is threadpoolctl's report: the OpenBLAS architecture (kernel
// set) in use.
func blasKernel(r *torchRun) string {
	var parts []string
	for _, b := range r.Blas {
		if b["internal_api"] == "openblas" || b["internal_api"] == "mkl" || b["internal_api"] == "blis" {
			parts = append(parts, fmt.Sprintf("%v %v, kernel %v, %v threads", b["internal_api"], b["version"], b["architecture"], b["num_threads"]))
		}
		if e, ok := b["error"]; ok {
			parts = append(parts, fmt.Sprint(e))
		}
	}
	if len(parts) == 0 {
		return "threadpoolctl saw no BLAS"
	}
	return strings.Join(parts, "; ")
}

// flops counts the floating-point operations (2 per multiply-add) of the
// masked-LM step on the same work: encoder forward and input-gradient
// backward (frozen weights: no weight gradients), the head at the masked
// positions (transform and V×d decoder, forward and backward).
func flops(sz bertSize, v int, train bool) float64 {
	n, T, d, I := float64(batchSize*seqLen), float64(seqLen), float64(sz.hidden), float64(sz.intermediate)
	m := float64(batchSize * masksPerSeq)
	L := float64(sz.layers)
	fwd := L*(4*n*d*d+2*n*T*d+2*n*d*I) + m*d*d + m*float64(v)*d
	if !train {
		return 2 * fwd
	}
	bwd := L*(4*n*d*d+4*n*T*d+2*n*d*I) + m*d*d + m*float64(v)*d
	return 2 * (fwd + bwd)
}

// goPeak times our GEMM on 2048³ (best of 5), GFLOP/s.
func goPeak() float64 {
	const n = 2048
	rng := rand.New(rand.NewPCG(1, 2))
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	gemm.Gemm(false, false, n, n, n, a, n, b, n, c, n, false)
	best := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		gemm.Gemm(false, false, n, n, n, a, n, b, n, c, n, false)
		best = min(best, time.Since(t0))
	}
	return 2 * n * n * n / best.Seconds() / 1e9
}

// stepShapes are the BERT-S step's products: torch's form (m, n, k, B
// transposed) and ours (the call finetune and tying make).
var stepShapes = []struct {
	name       string
	m, n, k    int
	tb         bool // torch: B given transposed (x·Wᵀ)
	gTA, gTB   bool // ours
	gm, gn, gk int
	packed     bool // ours: B is a frozen weight, packed once per Task
}{
	{name: "attention projections 512×256×256 (x·Wᵀ, W packed once)", m: 512, n: 256, k: 256, tb: true, gTB: true, gm: 512, gn: 256, gk: 256, packed: true},
	{name: "FFN up 512×1024×256 (x·Wᵀ, W packed once)", m: 512, n: 1024, k: 256, tb: true, gTB: true, gm: 512, gn: 1024, gk: 256, packed: true},
	{name: "FFN down 512×256×1024 (x·Wᵀ, W packed once)", m: 512, n: 256, k: 1024, tb: true, gTB: true, gm: 512, gn: 256, gk: 1024, packed: true},
	{name: "input gradient 512×256×1024 (g·W, W packed once)", m: 512, n: 256, k: 1024, gm: 512, gn: 256, gk: 1024, packed: true},
	{name: "tied head 80×30522×256 (ours: W·h, 30522×80)", m: 80, n: 30522, k: 256, tb: true, gm: 30522, gn: 80, gk: 256},
	{name: "head input gradient 80×256×30522 (ours: Wᵀ·g)", m: 80, n: 256, k: 30522, gTA: true, gm: 256, gn: 80, gk: 30522},
}

func shapeSpec() string {
	var parts []string
	for _, s := range stepShapes {
		tb := 0
		if s.tb {
			tb = 1
		}
		parts = append(parts, fmt.Sprintf("%d,%d,%d,%d", s.m, s.n, s.k, tb))
	}
	return strings.Join(parts, ";")
}

// goShape times one of our products (best of 7), GFLOP/s.
func goShape(i int) float64 {
	s := stepShapes[i]
	rng := rand.New(rand.NewPCG(uint64(i), 3))
	rand32 := func(n int) []float32 {
		x := make([]float32, n)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		return x
	}
	a, b, c := rand32(s.gm*s.gk), rand32(s.gk*s.gn), make([]float32, s.gm*s.gn)
	lda, ldb := s.gk, s.gn
	if s.gTA {
		lda = s.gm
	}
	if s.gTB {
		ldb = s.gk
	}
	run := func() { gemm.Gemm(s.gTA, s.gTB, s.gm, s.gn, s.gk, a, lda, b, ldb, c, s.gn, false) }
	if s.packed {
		pk := gemm.PackB(s.gTB, s.gk, s.gn, b, ldb)
		run = func() { gemm.GemmPacked(s.gTA, s.gm, a, lda, pk, c, s.gn, false) }
	}
	run()
	best := time.Duration(1 << 62)
	for range 7 {
		t0 := time.Now()
		run()
		best = min(best, time.Since(t0))
	}
	return 2 * float64(s.gm*s.gn*s.gk) / best.Seconds() / 1e9
}

func sectionVersus(s *summary) error {
	vs := &versusSummary{}
	s.versus = vs
	script, err := findFile("torch_versus.py")
	if err != nil {
		vs.why = err.Error()
		fmt.Printf("\nPyTorch comparison skipped: %s\n", vs.why)
		return nil
	}
	if opt.python == "" {
		vs.why = "-python is empty"
		fmt.Printf("\nPyTorch comparison skipped: %s\n", vs.why)
		return nil
	}
	if out, err := exec.Command(opt.python, "-c", "import torch").CombinedOutput(); err != nil {
		why := lastLine(out)
		if why == "" {
			why = err.Error()
		}
		vs.why = fmt.Sprintf("%s cannot import torch (%s); on Debian: apt-get install python3-torch libopenblas0-openmp python3-threadpoolctl libjemalloc2", opt.python, why)
		fmt.Printf("\nPyTorch comparison skipped: %s\n", vs.why)
		return nil
	}
	envs, je := torchEnvs()
	vs.jemalloc = je
	rounds := 9
	if opt.full {
		rounds = 15
	}
	fmt.Printf("\nAgainst PyTorch (torch_versus.py; %d threads; jemalloc for torch: %v)\n", runtime.GOMAXPROCS(0), je)

	// Each size; the first also times torch's GEMM peak and the step's
	// product shapes, with the setting found fastest there.
	for _, size := range versusSizes {
		if len(opt.sizes) > 0 && !opt.sizes[size.name] {
			continue
		}
		f, err := versusOne(script, envs, size, rounds, vs, len(vs.sizes) == 0)
		if err != nil {
			return err
		}
		vs.sizes = append(vs.sizes, f)
	}
	fmt.Printf("  GEMM peak 2048³: torch.mm %.0f GFLOP/s, gopeft %.0f GFLOP/s (%s kernel)\n", vs.torchPeak, vs.oursPeak, gemm.Path())
	for i, sh := range stepShapes {
		fmt.Printf("  %-52s gopeft %6.0f GFLOP/s, torch %6.0f GFLOP/s, ratio %.2f\n", sh.name, vs.shapes[i].ours, vs.shapes[i].torch, vs.shapes[i].ours/vs.shapes[i].torch)
	}
	vs.ok = "yes"
	return nil
}

// versusOne measures one size: the fastest OpenBLAS setting for torch,
// then rounds of torch (one process, every variant) alternating with our
// step and inference forward.
func versusOne(script string, envs []torchEnv, size versusSize, rounds int, vs *versusSummary, first bool) (*versusFigure, error) {
	built := time.Now()
	m := newBERTSized(size.sz, size.v, 10, 1)
	terms := vocabTerms(size.v, 10)
	batch := bertBatch(size.v, lastIDs(size.v, 10), func(id int) string { return terms[id] }, 42)
	w := bertWorkload(size.name, m, batch)
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: lastIDs(size.v, 10)}, "")
	if err != nil {
		return nil, err
	}
	tt, err := newTTTrainer(w, tm)
	if err != nil {
		return nil, err
	}
	inputs := make([]finetune.SequenceInput, len(batch))
	for i, ex := range batch {
		var ps []int
		for p := range ex.Targets {
			ps = append(ps, p)
		}
		sort.Ints(ps)
		inputs[i] = finetune.SequenceInput{Tokens: ex.Tokens, Positions: ps}
	}
	pred := finetune.NewPredictor() // weights packed once, as a user serving requests would
	infer := func() error {
		return tm.Do(func() error {
			_, err := pred.PredictMaskedLM(m, inputs)
			return err
		})
	}
	f := &versusFigure{size: size, torch: map[string]float64{},
		flopsStep: flops(size.sz, size.v, true), flopsInfer: flops(size.sz, size.v, false)}
	fmt.Printf("  %s (V=%d, hidden %d, %d layers, %d heads, FFN %d; batch %d×%d, %d masked, k=10; model built in %s)\n",
		size.name, size.v, size.sz.hidden, size.sz.layers, size.sz.heads, size.sz.intermediate, batchSize, seqLen, batchSize*masksPerSeq,
		time.Since(built).Round(time.Millisecond))

	if err := tt.step(); err != nil { // warm-up
		return nil, err
	}
	if err := infer(); err != nil {
		return nil, err
	}
	// Which setting is fastest for torch (ideal step + inference forward,
	// best of 3 after the warm-up, our runs in between): searched at the
	// first size, reused after.
	if first {
		best, bestMS := -1, time.Duration(0)
		for i, e := range envs {
			srv, err := startTorch(script, e, size, "ideal_same,eval_same")
			if err != nil {
				return nil, err
			}
			bi, be := time.Duration(1<<62), time.Duration(1<<62)
			for range 3 {
				ti, err := srv.run("ideal_same")
				if err != nil {
					srv.close()
					return nil, err
				}
				if err := tt.step(); err != nil {
					srv.close()
					return nil, err
				}
				te, err := srv.run("eval_same")
				if err != nil {
					srv.close()
					return nil, err
				}
				bi, be = min(bi, ti), min(be, te)
			}
			srv.close()
			line := fmt.Sprintf("%s: %s; ideal step %s, eval forward %s (best of 3)", e.name, blasKernel(&srv.ready), ms(bi), ms(be))
			fmt.Printf("    torch setting %s\n", line)
			vs.envs = append(vs.envs, line)
			if best < 0 || bi+be < bestMS {
				best, bestMS = i, bi+be
				vs.kernel = blasKernel(&srv.ready)
			}
		}
		vs.best = best
		// The GEMM peak and the step's product shapes, in that setting.
		tr, err := runTorch(script, envs[best], size, "gemm", 1, shapeSpec())
		if err != nil {
			return nil, err
		}
		vs.torchPeak = tr.Peak
		for _, sh := range stepShapes {
			tb := 0
			if sh.tb {
				tb = 1
			}
			vs.shapes = append(vs.shapes, shapeFigure{name: sh.name, torch: tr.Shapes[fmt.Sprintf("%d,%d,%d,%d", sh.m, sh.n, sh.k, tb)]["gflops"]})
		}
		// Ours right after, on the same machine state.
		vs.oursPeak = goPeak()
		for i := range stepShapes {
			vs.shapes[i].ours = goShape(i)
		}
	}
	f.env, f.kernel = envs[vs.best].name, vs.kernel
	if !first {
		rounds = max(4, rounds/2)
	}
	// Rounds of six runs, one of each (torch: PEFT's algorithm, ideal,
	// users' PEFT, eval forward; ours: step, inference forward), starting
	// from a different one every round; ratios are of the same round.
	srv, err := startTorch(script, envs[vs.best], size, "peft_same,ideal_same,users,eval_same")
	if err != nil {
		return nil, err
	}
	defer srv.close()
	names := []string{"peft_same", "ideal_same", "users", "eval_same", "ours_step", "ours_infer"}
	times := map[string][]time.Duration{}
	for r := range rounds {
		for j := range names {
			v := names[(r+j)%len(names)]
			var d time.Duration
			switch v {
			case "ours_step":
				t0 := time.Now()
				err = tt.step()
				d = time.Since(t0)
			case "ours_infer":
				t0 := time.Now()
				err = infer()
				d = time.Since(t0)
			default:
				d, err = srv.run(v)
			}
			if err != nil {
				return nil, err
			}
			times[v] = append(times[v], d)
		}
	}
	oursStep, oursInfer := times["ours_step"], times["ours_infer"]
	ratios := map[string][]float64{}
	for r := range rounds {
		for _, v := range []string{"peft_same", "ideal_same", "users"} {
			ratios[v] = append(ratios[v], times[v][r].Seconds()/oursStep[r].Seconds())
		}
		ratios["eval_same"] = append(ratios["eval_same"], times["eval_same"][r].Seconds()/oursInfer[r].Seconds())
	}
	torchAll := map[string][]float64{}
	for _, v := range names[:4] {
		for _, d := range times[v] {
			torchAll[v] = append(torchAll[v], d.Seconds()*1000)
		}
	}
	f.oursStep, f.oursInfer = medianDur(oursStep), medianDur(oursInfer)
	for k, v := range torchAll {
		f.torch[k] = medianFloat(v)
	}
	f.vsIdeal, f.vsPEFT = medianFloat(ratios["ideal_same"]), medianFloat(ratios["peft_same"])
	f.vsUsers, f.inf = medianFloat(ratios["users"]), medianFloat(ratios["eval_same"])
	fmt.Printf("    torch setting (fastest at the first size): %s (%s)\n", f.env, f.kernel)
	fmt.Printf("    gopeft step %s, inference forward %s; torch: PEFT same work %.1f ms, ideal same work %.1f ms, users' PEFT (head at all %d positions) %.1f ms, eval forward %.1f ms\n",
		ms(f.oursStep), ms(f.oursInfer), f.torch["peft_same"], f.torch["ideal_same"], batchSize*seqLen, f.torch["users"], f.torch["eval_same"])
	fmt.Printf("    gopeft speed ÷ torch (paired medians): same work vs ideal %.2f, vs PEFT's algorithm %.2f; vs users' PEFT %.2f; inference %.2f\n",
		f.vsIdeal, f.vsPEFT, f.vsUsers, f.inf)
	fmt.Printf("    step %.1f GFLOP (same work): gopeft %.0f GFLOP/s, torch ideal %.0f GFLOP/s\n",
		f.flopsStep/1e9, f.flopsStep/f.oursStep.Seconds()/1e9, f.flopsStep/(f.torch["ideal_same"]/1000)/1e9)
	return f, nil
}

// findFile locates a file next to this command's sources (go run from the
// module root or from this directory).
func findFile(name string) (string, error) {
	for _, p := range []string{"examples/benchmark/" + name, name} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (run from the module root)", name)
}
