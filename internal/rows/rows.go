// Package rows holds the dtype-agnostic row operations the plugin needs on
// spago matrices: copying a token row in and out of a vocab × dim matrix,
// bit-exact comparison and finiteness checks. spago models are not generic
// once built (mat.Matrix hides Dense[T]), so every function here dispatches
// on the concrete float32/float64 type instead of taking a type parameter.
package rows

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// Floats returns the live backing data of m as float32 or float64 (exactly
// one is non-nil). It fails for any other matrix implementation.
func Floats(m mat.Matrix) ([]float32, []float64, error) {
	switch d := m.(type) {
	case *mat.Dense[float32]:
		return mat.Data[float32](d), nil, nil
	case *mat.Dense[float64]:
		return nil, mat.Data[float64](d), nil
	}
	return nil, nil, fmt.Errorf("unsupported matrix type %T: expected *mat.Dense[float32] or *mat.Dense[float64]", m)
}

// DType returns "float32" or "float64" for a dense matrix, "" otherwise.
func DType(m mat.Matrix) string {
	switch m.(type) {
	case *mat.Dense[float32]:
		return "float32"
	case *mat.Dense[float64]:
		return "float64"
	}
	return ""
}

// Get returns a copy of row i of m (a rows × cols matrix, or a column vector
// when i is 0 and cols is the whole size) as float64 values.
func Get(m mat.Matrix, i, cols int) []float64 {
	f32, f64, _ := Floats(m)
	out := make([]float64, cols)
	switch {
	case f32 != nil:
		for j, v := range f32[i*cols : (i+1)*cols] {
			out[j] = float64(v)
		}
	case f64 != nil:
		copy(out, f64[i*cols:(i+1)*cols])
	}
	return out
}

// Copy writes row si of src (srcCols wide) into row di of dst (same width).
// Both matrices must have the same dtype; the copy is bit-exact.
func Copy(dst mat.Matrix, di int, src mat.Matrix, si int, cols int) error {
	d32, d64, err := Floats(dst)
	if err != nil {
		return err
	}
	s32, s64, err := Floats(src)
	if err != nil {
		return err
	}
	switch {
	case d32 != nil && s32 != nil:
		copy(d32[di*cols:(di+1)*cols], s32[si*cols:(si+1)*cols])
	case d64 != nil && s64 != nil:
		copy(d64[di*cols:(di+1)*cols], s64[si*cols:(si+1)*cols])
	default:
		return fmt.Errorf("dtype mismatch: cannot copy a %s row into a %s matrix", DType(src), DType(dst))
	}
	return nil
}

// Set writes float64 values into row i of m, converting to m's dtype.
func Set(m mat.Matrix, i int, vals []float64) error {
	f32, f64, err := Floats(m)
	if err != nil {
		return err
	}
	cols := len(vals)
	if f32 != nil {
		for j, v := range vals {
			f32[i*cols+j] = float32(v)
		}
		return nil
	}
	copy(f64[i*cols:(i+1)*cols], vals)
	return nil
}

// Finite reports whether every value of row i of m is finite; when not, it
// also returns the first offending column.
func Finite(m mat.Matrix, i, cols int) (bool, int) {
	f32, f64, _ := Floats(m)
	for j := 0; j < cols; j++ {
		var v float64
		if f32 != nil {
			v = float64(f32[i*cols+j])
		} else {
			v = f64[i*cols+j]
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false, j
		}
	}
	return true, -1
}

// MaxAbsDiff is the largest |a[i,:] - b[j,:]| over one row of each matrix.
func MaxAbsDiff(a mat.Matrix, i int, b mat.Matrix, j int, cols int) float64 {
	x, y := Get(a, i, cols), Get(b, j, cols)
	worst := 0.0
	for k := range x {
		worst = math.Max(worst, math.Abs(x[k]-y[k]))
	}
	return worst
}

// Zero reports whether row i of m is all zeros.
func Zero(m mat.Matrix, i, cols int) bool {
	for _, v := range Get(m, i, cols) {
		if v != 0 {
			return false
		}
	}
	return true
}
