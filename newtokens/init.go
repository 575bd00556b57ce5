package newtokens

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/untrained"
)

// Init says how the rows of new tokens start.
type Init int

const (
	// InitMean (the default) sets each new row to the mean of the table's
	// existing rows, skipping rows that look untrained by package
	// untrained's default rule: rows that are exactly zero (as Unsloth skips
	// them; cybertron's BERT converter leaves the last vocabulary row zero)
	// and rows whose norm is a far, small outlier (Result.Untrained lists
	// them). Plain mean, no noise: the result
	// is deterministic. This is transformers' mean resizing without its
	// noise, and Unsloth's add_new_tokens(method="mean").
	InitMean Init = iota
	// InitTableNormal draws each element from N(0, σ²), σ being the
	// population standard deviation of all elements of the table's existing
	// rows that do not look untrained (as for InitMean), from a PCG
	// generator seeded by Options.Seed: random rows on the table's own
	// scale. (Not trainabletokens.InitRandom, which is PEFT's unscaled
	// N(0, 1).) ParseInit also accepts its former name "random".
	InitTableNormal
	// InitSubtokenMean sets each new row to the average of the rows of the
	// tokens the string tokenized into before it was added (with the
	// tokenizer passed to AddTokens, including tokens added earlier),
	// leaving out the unknown token ([UNK], <unk>) and rows that look
	// untrained (as for InitMean). When nothing is left
	// (the string tokenized to unknown tokens only, or to nothing) the token
	// falls back to InitMean, reported in Result.PerToken. Unsloth's
	// method="interpolation" with interpolation weight 1.
	InitSubtokenMean
)

var initNames = []string{"mean", "table_normal", "subtoken_mean"}

// String returns "mean", "table_normal" or "subtoken_mean".
func (i Init) String() string {
	if i >= 0 && int(i) < len(initNames) {
		return initNames[i]
	}
	return fmt.Sprintf("Init(%d)", int(i))
}

// ParseInit parses "mean", "table_normal" or "subtoken_mean"
// (case-insensitive; "subtoken-mean", "subtokenmean" and the former name of
// InitTableNormal, "random", are accepted too).
func ParseInit(s string) (Init, error) {
	norm := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
	switch norm {
	case "subtokenmean":
		norm = "subtoken_mean"
	case "random", "tablenormal":
		norm = "table_normal"
	}
	for i, n := range initNames {
		if n == norm {
			return Init(i), nil
		}
	}
	return 0, fmt.Errorf("newtokens: unknown init %q; expected one of %s", s, strings.Join(initNames, ", "))
}

func (i Init) valid() bool { return i >= InitMean && i <= InitSubtokenMean }

// rowSet gives float64 copies of the rows of a vocab-sized table: an
// embedding table or the weight matrix of an output projection.
type rowSet interface {
	count() int
	row(i int) []float64
}

type embRows struct{ e *embedding.Model }

func (r embRows) count() int { return len(r.e.Weights) }
func (r embRows) row(i int) []float64 {
	return rows.Get(r.e.Weights[i].Value().(mat.Matrix), 0, r.e.Dim)
}

type matRows struct {
	m    mat.Matrix
	cols int
}

func (r matRows) count() int          { return r.m.Shape()[0] }
func (r matRows) row(i int) []float64 { return rows.Get(r.m, i, r.cols) }

func isZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// stats holds what the strategies need from one table.
type stats struct {
	mean []float64 // mean of the trained-looking rows
	std  float64   // population std of all elements of those rows
	// untrained are the rows left out (untrained.DetectRows, default rule).
	untrained map[int]bool
	ids       []int
}

// tableStats computes the mean and spread of the rows that do not look
// untrained (package untrained's rule: zero rows, and rows whose norm is a
// far, small outlier).
// Rows in exclude (the reserved slots being filled) are left out too.
func tableStats(r rowSet, dim int, exclude map[int]bool) (stats, error) {
	det, err := untrained.DetectRows(r.count(), r.row, nil)
	if err != nil {
		return stats{}, err
	}
	sum := make([]float64, dim)
	n := 0
	var total, totalSq float64
	s := stats{untrained: det.Set(), ids: det.IDs()}
	for i := 0; i < r.count(); i++ {
		if s.untrained[i] || exclude[i] {
			continue
		}
		v := r.row(i)
		n++
		for j, x := range v {
			sum[j] += x
			total += x
			totalSq += x * x
		}
	}
	s.mean = sum
	if n == 0 {
		return s, nil
	}
	for j := range sum {
		sum[j] /= float64(n)
	}
	m := float64(n * dim)
	mu := total / m
	s.std = math.Sqrt(math.Max(0, totalSq/m-mu*mu))
	return s, nil
}

func averageRows(r rowSet, ids []int, dim int) []float64 {
	out := make([]float64, dim)
	for _, id := range ids {
		for j, x := range r.row(id) {
			out[j] += x
		}
	}
	for j := range out {
		out[j] /= float64(len(ids))
	}
	return out
}

func normalRow(rng *rand.Rand, dim int, std float64) []float64 {
	out := make([]float64, dim)
	for j := range out {
		out[j] = rng.NormFloat64() * std
	}
	return out
}

// newRNG returns the generator InitTableNormal uses for a seed.
func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6e6577746f6b656e))
}
