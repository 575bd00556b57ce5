package trainabletokens

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSafetensorsCodec(t *testing.T) {
	a := f32Bytes(1, 2, 3, 4, 5, 6)
	b := f64Bytes(0.5, -0.25)
	out, err := encodeSafetensors(map[string]string{"format": "pt", "k": "<v>"}, []stOut{
		{name: "z", dtype: "F64", shape: []int{2}, data: b},
		{name: "a", dtype: "F32", shape: []int{2, 3}, data: a},
	})
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(out)
	assert.Zero(t, n%8, "header padded to 8 bytes")
	assert.Equal(t, byte('{'), out[8])
	assert.Contains(t, string(out[8:8+n]), `"k":"<v>"`, "no HTML escaping")
	h, err := readSTHeader(bytes.NewReader(out), int64(len(out)), "mem")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"format": "pt", "k": "<v>"}, h.metadata)
	require.Len(t, h.tensors, 2)
	assert.Equal(t, "a", h.tensors[0].name, "data in name order")
	assert.Equal(t, []uint64{2, 3}, h.tensors[0].shape)
	got, err := h.read(bytes.NewReader(out), h.byName["z"])
	require.NoError(t, err)
	assert.Equal(t, b, got)
	got, err = h.read(bytes.NewReader(out), h.byName["a"])
	require.NoError(t, err)
	assert.Equal(t, a, got)

	again, err := encodeSafetensors(map[string]string{"k": "<v>", "format": "pt"}, []stOut{
		{name: "a", dtype: "F32", shape: []int{2, 3}, data: a},
		{name: "z", dtype: "F64", shape: []int{2}, data: b},
	})
	require.NoError(t, err)
	assert.Equal(t, out, again, "deterministic")

	_, err = encodeSafetensors(nil, []stOut{{name: "a", dtype: "F32", shape: []int{2}, data: a}})
	assert.ErrorContains(t, err, "24 data bytes for shape [2] of F32")
	_, err = encodeSafetensors(nil, []stOut{{name: "a", dtype: "F32", shape: []int{1}, data: a[:4]}, {name: "a", dtype: "F32", shape: []int{1}, data: a[:4]}})
	assert.ErrorContains(t, err, "duplicate tensor name")
}

func TestSafetensorsEdgeCases(t *testing.T) {
	parse := func(b []byte) error {
		_, err := readSTHeader(bytes.NewReader(b), int64(len(b)), "mem")
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
