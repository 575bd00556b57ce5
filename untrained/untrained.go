// Package untrained finds rows of a token table that look untrained:
// rows a model never learned, which make bad starting points for trainable
// tokens and bad terms in the mean that initialises new tokens.
//
// # The rule
//
// A row is reported when either
//
//   - it is zero: every element's magnitude is at most Rule.ZeroTolerance
//     (default 0, i.e. exactly zero; Unsloth uses 1e-16). cybertron's BERT
//     converter leaves the last vocabulary row zero, and checkpoints such as
//     Llama 3 ship rows of zeros or near-zeros for tokens never seen; or
//   - its Euclidean norm is a low outlier on both of two scales:
//     its robust z-score z = (log‖r‖ − median) / (1.4826 · MAD), taken over
//     the log-norms of the non-zero rows, is below −Rule.MaxZ (default 5),
//     AND ‖r‖ is below Rule.MaxRatio (default 0.25) times the median norm.
//
// The z-score alone flags any row that is unusual for its table (a heavily
// trained [MASK] row may be much shorter than the others); the ratio alone
// flags rows of tables whose norms spread widely. Requiring both keeps the
// report to rows that are far out and small, the mark of rows left near
// their (small) initialisation or decayed towards zero. Rows with large
// norms are never reported: frequent, heavily trained tokens grow.
//
// Rows holding NaN or ±Inf are reported too (ReasonNonFinite) and left out
// of the statistics.
//
// The rule cannot see rows that were never trained but still look like the
// rest (a table initialised at the trained rows' scale and trained little:
// the untrained rows are then the typical ones). It is a warning, not proof.
//
// Detect reads an embedding table, DetectMatrix a vocab × dim matrix (an
// output projection), DetectRows any row source, DetectModel every token
// table of a cybertron model. All are non-generic, for notebooks.
package untrained

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/registry"
)

// Reasons a row is reported.
const (
	// ReasonZero: every element is zero (within Rule.ZeroTolerance).
	ReasonZero = "zero"
	// ReasonLowNorm: the norm is a low outlier (see the package rule).
	ReasonLowNorm = "low norm"
	// ReasonNonFinite: the row holds NaN or ±Inf (a broken row, never a
	// good start either); it is left out of the statistics.
	ReasonNonFinite = "non-finite"
)

// Defaults of Rule's zero fields.
const (
	DefaultMaxZ     = 5.0
	DefaultMaxRatio = 0.25
)

// ErrInvalid wraps errors about the arguments (nil table, bad rule, bad
// row).
var ErrInvalid = errors.New("untrained: invalid input")

// Rule holds the thresholds. The zero value (and nil) means the defaults.
type Rule struct {
	// ZeroTolerance: a row whose elements all have |x| <= ZeroTolerance is
	// zero. 0 means exactly zero. Must be finite and >= 0.
	ZeroTolerance float64
	// MaxZ: a low-norm row has a robust z-score of its log-norm below
	// -MaxZ. 0 means DefaultMaxZ. Must be finite and >= 0.
	MaxZ float64
	// MaxRatio: a low-norm row has a norm below MaxRatio times the median
	// norm. 0 means DefaultMaxRatio. Must be finite and in [0, 1].
	MaxRatio float64
	// NoLowNorm reports zero rows only.
	NoLowNorm bool
}

func (r *Rule) resolve() (Rule, error) {
	var o Rule
	if r != nil {
		o = *r
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"ZeroTolerance", o.ZeroTolerance}, {"MaxZ", o.MaxZ}, {"MaxRatio", o.MaxRatio}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return o, fmt.Errorf("%w: Rule.%s = %v; expected a finite value >= 0", ErrInvalid, f.name, f.v)
		}
	}
	if o.MaxRatio > 1 {
		return o, fmt.Errorf("%w: Rule.MaxRatio = %v; expected a value in [0, 1]", ErrInvalid, o.MaxRatio)
	}
	if o.MaxZ == 0 {
		o.MaxZ = DefaultMaxZ
	}
	if o.MaxRatio == 0 {
		o.MaxRatio = DefaultMaxRatio
	}
	return o, nil
}

// Row is one reported row.
type Row struct {
	ID int
	// Norm is the row's Euclidean norm.
	Norm float64
	// Z is the robust z-score of its log-norm (-Inf for a zero row).
	Z      float64
	Reason string
}

// Result is what Detect found in one table.
type Result struct {
	// Rows is the number of rows examined; Zero how many were zero,
	// NonFinite how many held NaN or ±Inf.
	Rows, Zero, NonFinite int
	// MedianNorm is the median norm of the non-zero rows; MedianLogNorm
	// and MADLogNorm the median and median absolute deviation of their
	// log-norms (the z-score's centre and scale before the 1.4826 factor).
	MedianNorm, MedianLogNorm, MADLogNorm float64
	// Rule is the rule applied, defaults filled in.
	Rule Rule
	// Untrained are the reported rows in id order.
	Untrained []Row
}

// IDs returns the ids of the reported rows in order.
func (r *Result) IDs() []int {
	if r == nil {
		return nil
	}
	out := make([]int, len(r.Untrained))
	for i, u := range r.Untrained {
		out[i] = u.ID
	}
	return out
}

// Contains reports whether id is a reported row.
func (r *Result) Contains(id int) bool {
	if r == nil {
		return false
	}
	i := sort.Search(len(r.Untrained), func(i int) bool { return r.Untrained[i].ID >= id })
	return i < len(r.Untrained) && r.Untrained[i].ID == id
}

// Set returns the reported ids as a set.
func (r *Result) Set() map[int]bool {
	out := map[int]bool{}
	if r != nil {
		for _, u := range r.Untrained {
			out[u.ID] = true
		}
	}
	return out
}

// String summarises the result in one line.
func (r *Result) String() string {
	if r == nil {
		return "<nil>"
	}
	ids := r.IDs()
	s := fmt.Sprintf("%d of %d rows look untrained (%d zero; median norm %.4g; rule: zero within %g, or log-norm robust z < -%g and norm < %g x median)",
		len(ids), r.Rows, r.Zero, r.MedianNorm, r.Rule.ZeroTolerance, r.Rule.MaxZ, r.Rule.MaxRatio)
	if r.Rule.NoLowNorm {
		s = fmt.Sprintf("%d of %d rows look untrained (zero within %g)", len(ids), r.Rows, r.Rule.ZeroTolerance)
	}
	if len(ids) > 0 {
		s += ": " + shortList(ids, 20)
	}
	return s
}

func shortList(ids []int, max int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i == max {
			fmt.Fprintf(&b, " … %d more", len(ids)-max)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, id)
	}
	b.WriteByte(']')
	return b.String()
}

// DetectRows applies the rule to n rows read by row(i) (each a copy or a
// view that DetectRows does not keep). Every row must have the same,
// non-zero length.
func DetectRows(n int, row func(i int) []float64, rule *Rule) (*Result, error) {
	o, err := rule.resolve()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: %d rows", ErrInvalid, n)
	}
	if n > 0 && row == nil {
		return nil, fmt.Errorf("%w: row function is nil", ErrInvalid)
	}
	res := &Result{Rows: n, Rule: o}
	norms := make([]float64, n)
	zero := make([]bool, n)
	bad := make([]bool, n)
	dim := -1
	for i := 0; i < n; i++ {
		r := row(i)
		if dim < 0 {
			dim = len(r)
			if dim == 0 {
				return nil, fmt.Errorf("%w: row 0 is empty", ErrInvalid)
			}
		}
		if len(r) != dim {
			return nil, fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrInvalid, i, len(r), dim)
		}
		z := true
		var ss, scale float64
		for _, x := range r {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				bad[i] = true
			}
		}
		if bad[i] {
			norms[i] = math.NaN()
			res.NonFinite++
			continue
		}
		for _, x := range r {
			a := math.Abs(x)
			if a > o.ZeroTolerance {
				z = false
			}
			scale = math.Max(scale, a)
		}
		if scale > 0 { // scaled sum of squares: no overflow or underflow
			for _, x := range r {
				q := x / scale
				ss += q * q
			}
		}
		norms[i] = scale * math.Sqrt(ss)
		zero[i] = z
		if z {
			res.Zero++
		}
	}
	var logs, plain []float64
	for i, nm := range norms {
		if !bad[i] && !zero[i] && nm > 0 {
			logs = append(logs, math.Log(nm))
			plain = append(plain, nm)
		}
	}
	if len(logs) > 0 {
		res.MedianNorm = median(plain)
		res.MedianLogNorm = median(logs)
		dev := make([]float64, len(logs))
		for i, l := range logs {
			dev[i] = math.Abs(l - res.MedianLogNorm)
		}
		res.MADLogNorm = median(dev)
	}
	for i := 0; i < n; i++ {
		u := Row{ID: i, Norm: norms[i], Z: math.Inf(-1)}
		if !bad[i] && !zero[i] && norms[i] > 0 {
			u.Z = robustZ(math.Log(norms[i]), res.MedianLogNorm, res.MADLogNorm)
		}
		switch {
		case bad[i]:
			u.Z = math.NaN()
			u.Reason = ReasonNonFinite
		case zero[i]:
			u.Reason = ReasonZero
		case !o.NoLowNorm && u.Z < -o.MaxZ && norms[i] < o.MaxRatio*res.MedianNorm:
			u.Reason = ReasonLowNorm
		default:
			continue
		}
		res.Untrained = append(res.Untrained, u)
	}
	return res, nil
}

// robustZ is (x - med) / (1.4826 MAD); with MAD 0 every value off the
// median is infinitely far.
func robustZ(x, med, mad float64) float64 {
	d := x - med
	if mad == 0 {
		switch {
		case d < 0:
			return math.Inf(-1)
		case d > 0:
			return math.Inf(1)
		}
		return 0
	}
	return d / (1.4826 * mad)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := len(s) / 2
	if len(s)%2 == 1 {
		return s[k]
	}
	return (s[k-1] + s[k]) / 2
}

// Detect applies the rule (nil: defaults) to the rows of an embedding
// table.
func Detect(table *embedding.Model, rule *Rule) (*Result, error) {
	if table == nil {
		return nil, fmt.Errorf("%w: table is nil", ErrInvalid)
	}
	for i, p := range table.Weights {
		if p == nil {
			return nil, fmt.Errorf("%w: row %d is nil", ErrInvalid, i)
		}
		m, ok := p.Value().(mat.Matrix)
		if !ok || rows.DType(m) == "" {
			return nil, fmt.Errorf("%w: row %d is %T, expected a float32/float64 dense matrix", ErrInvalid, i, p.Value())
		}
		if m.Size() != table.Dim {
			return nil, fmt.Errorf("%w: row %d has %d values, expected Dim %d", ErrInvalid, i, m.Size(), table.Dim)
		}
	}
	return DetectRows(len(table.Weights), func(i int) []float64 {
		return rows.Get(table.Weights[i].Value().(mat.Matrix), 0, table.Dim)
	}, rule)
}

// DetectMatrix applies the rule to the rows of a rows × cols dense matrix,
// such as an output projection's weight.
func DetectMatrix(m mat.Matrix, rule *Rule) (*Result, error) {
	if m == nil || reflect.ValueOf(m).Kind() == reflect.Pointer && reflect.ValueOf(m).IsNil() {
		return nil, fmt.Errorf("%w: matrix is nil", ErrInvalid)
	}
	if rows.DType(m) == "" {
		return nil, fmt.Errorf("%w: %T, expected a float32/float64 dense matrix", ErrInvalid, m)
	}
	s := m.Shape()
	if len(s) != 2 {
		return nil, fmt.Errorf("%w: matrix shape %v, expected rows × cols", ErrInvalid, s)
	}
	return DetectRows(s[0], func(i int) []float64 { return rows.Get(m, i, s[1]) }, rule)
}

// TableResult is Detect's result for one table of a model.
type TableResult struct {
	// HFPath is the table's Hugging Face module path, Path its Go path.
	HFPath, Path string
	Input        bool
	*Result
}

// DetectModel applies the rule to every token table of a model that
// package registry describes (BERT, BART, …), in the layout's order.
// Tables shared under several names are examined once.
func DetectModel(model nn.Model, rule *Rule) ([]TableResult, error) {
	if _, err := rule.resolve(); err != nil {
		return nil, err
	}
	l, err := registry.Describe(model)
	if err != nil {
		return nil, fmt.Errorf("untrained: %w", err)
	}
	var out []TableResult
	for _, t := range l.Tables {
		r, err := Detect(t.Embedding, rule)
		if err != nil {
			return nil, fmt.Errorf("untrained: table %s: %w", t.HFPath, err)
		}
		out = append(out, TableResult{HFPath: t.HFPath, Path: t.Path, Input: t.Input, Result: r})
	}
	return out, nil
}
