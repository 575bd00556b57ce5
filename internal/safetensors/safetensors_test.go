package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rawST(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

func f32Bytes(vals ...float64) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
	}
	return out
}

func f64Bytes(vals ...float64) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
	}
	return out
}

func TestCodec(t *testing.T) {
	a := f32Bytes(1, 2, 3, 4, 5, 6)
	b := f64Bytes(0.5, -0.25)
	out, err := Encode(map[string]string{"format": "pt", "k": "<v>"}, []Tensor{
		{Name: "z", DType: F64, Shape: []int{2}, Data: b},
		{Name: "a", DType: F32, Shape: []int{2, 3}, Data: a},
	})
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(out)
	assert.Zero(t, n%8, "header padded to 8 bytes")
	assert.Equal(t, byte('{'), out[8])
	assert.Contains(t, string(out[8:8+n]), `"k":"<v>"`, "no HTML escaping")
	h, err := ReadHeader(bytes.NewReader(out), int64(len(out)), "mem")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"format": "pt", "k": "<v>"}, h.Metadata)
	require.Len(t, h.Tensors, 2)
	assert.Equal(t, "a", h.Tensors[0].Name, "data in name order")
	assert.Equal(t, []uint64{2, 3}, h.Tensors[0].Shape)
	assert.Equal(t, uint64(6), h.Tensors[0].Elements())
	got, err := h.Raw(bytes.NewReader(out), h.Tensor("z"))
	require.NoError(t, err)
	assert.Equal(t, b, got)
	assert.Equal(t, []float64{0.5, -0.25}, Float64s(got))
	assert.Equal(t, -0.25, At(got, F64, 1))
	got, err = h.Raw(bytes.NewReader(out), h.Tensor("a"))
	require.NoError(t, err)
	assert.Equal(t, a, got)
	assert.Equal(t, []float32{1, 2, 3, 4, 5, 6}, Float32s(got))
	assert.Equal(t, 5.0, At(got, F32, 4))
	assert.Nil(t, h.Tensor("missing"))

	again, err := Encode(map[string]string{"k": "<v>", "format": "pt"}, []Tensor{
		{Name: "a", DType: F32, Shape: []int{2, 3}, Data: AppendFloat32s(nil, []float32{1, 2, 3, 4, 5, 6})},
		{Name: "z", DType: F64, Shape: []int{2}, Data: AppendFloat64s(nil, []float64{0.5, -0.25})},
	})
	require.NoError(t, err)
	assert.Equal(t, out, again, "deterministic")

	_, err = Encode(nil, []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: a}})
	assert.ErrorContains(t, err, "24 data bytes for shape [2] of F32")
	_, err = Encode(nil, []Tensor{{Name: "a", DType: F32, Shape: []int{1}, Data: a[:4]}, {Name: "a", DType: F32, Shape: []int{1}, Data: a[:4]}})
	assert.ErrorContains(t, err, "duplicate tensor name")
	_, err = Encode(nil, []Tensor{{Name: "a", DType: F32, Shape: []int{-1}, Data: nil}})
	assert.ErrorContains(t, err, "negative dimension")
}

func TestEdgeCases(t *testing.T) {
	parse := func(b []byte) error {
		_, err := ReadHeader(bytes.NewReader(b), int64(len(b)), "mem")
		return err
	}
	// Empty file: no tensors, padding and a null metadata are fine.
	assert.NoError(t, parse(rawST(`{}      `, nil)))
	assert.NoError(t, parse(rawST(`{"__metadata__":null}`, nil)))
	// Zero-sized tensors may share an offset.
	assert.NoError(t, parse(rawST(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4))))
	// Sub-byte dtypes are sized in bits.
	assert.NoError(t, parse(rawST(`{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}`, make([]byte, 2))))
	assert.ErrorContains(t, parse(rawST(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2))), "not a whole number of bytes")
	assert.ErrorContains(t, parse(rawST(`{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, make([]byte, 4))), "1.0 is not a non-negative integer")
	assert.ErrorContains(t, parse(rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 4))), "expected 2 elements, found 3")
	assert.ErrorContains(t, parse(rawST(`{"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4))), `key "dtype" appears twice`)
	assert.ErrorContains(t, parse(rawST(`{"a":null}`, nil)), "expected a JSON object")
	assert.ErrorContains(t, parse([]byte{1, 0, 0, 0, 0, 0, 0, 0, '{'}), "header length 1 is too small")
	assert.ErrorContains(t, parse([]byte{1, 2, 3}), "file is 3 bytes")
}

// Every error is an *Error naming the file; I/O errors are wrapped.
func TestErrorType(t *testing.T) {
	b := rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8))
	_, err := ReadHeader(bytes.NewReader(b), int64(len(b)), "x.safetensors")
	var se *Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "x.safetensors", se.File)
	assert.Contains(t, err.Error(), "x.safetensors: tensor \"a\"")

	good := rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4))
	h, err := ReadHeader(bytes.NewReader(good), int64(len(good)), "g")
	require.NoError(t, err)
	boom := errors.New("disk gone")
	_, err = h.Raw(failingReader{boom}, h.Tensor("a"))
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, boom)
}

type failingReader struct{ err error }

func (f failingReader) ReadAt([]byte, int64) (int, error) { return 0, f.err }

var _ io.ReaderAt = failingReader{}
