package strictjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestObject(t *testing.T) {
	ms, err := Object([]byte(` {"b": 1, "a": [2, 3.5]} `))
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Equal(t, "b", ms[0].Key, "document order")
	assert.JSONEq(t, `[2, 3.5]`, string(ms[1].Value))

	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"a":2}`, `key "a" appears twice`},
		{`[1]`, "expected a JSON object"},
		{`{"a":1} {}`, "unexpected data after the JSON object"},
		{`{"a":}`, "invalid character"},
		{``, "EOF"},
	} {
		_, err := Object([]byte(tc.in))
		assert.ErrorContains(t, err, tc.want, tc.in)
	}
	f, err := Fields([]byte(`{"x":null}`))
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage("null"), f["x"])
}

func TestNumbers(t *testing.T) {
	v, err := Value(json.RawMessage(`[1, 18446744073709551615]`))
	require.NoError(t, err)
	got, err := Naturals(v, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 18446744073709551615}, got)
	for _, tc := range []struct{ in, want string }{
		{`[1.0]`, "1.0 is not a non-negative integer"},
		{`[-1]`, "-1 is not a non-negative integer"},
		{`[1e3]`, "1e3 is not a non-negative integer"},
		{`[18446744073709551616]`, "does not fit in 64 bits"},
		{`["1"]`, "element 0 is not a number"},
		{`{}`, "expected an array"},
	} {
		v, err := Value(json.RawMessage(tc.in))
		require.NoError(t, err)
		_, err = Naturals(v, -1)
		assert.ErrorContains(t, err, tc.want, tc.in)
	}
	v, _ = Value(json.RawMessage(`[1]`))
	_, err = Naturals(v, 2)
	assert.ErrorContains(t, err, "expected 2 elements, found 1")
}

func TestShort(t *testing.T) {
	assert.Equal(t, `{ "a": 1 }`, Short([]byte("{\n  \"a\":   1\n}")))
	long := Short([]byte(strings.Repeat("x", 200)))
	assert.Len(t, long, 60)
	assert.True(t, strings.HasSuffix(long, "..."))
	assert.Equal(t, "a\uFFFDb", Short([]byte("a\xffb")))
}
