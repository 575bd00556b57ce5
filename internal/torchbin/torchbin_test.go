package torchbin_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/internal/torchbin"
)

func fixtureBin(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testmodels.Dir("peft"), "bert-tiny-bin", "adapter_model.bin"))
	require.NoError(t, err)
	return data
}

// row recomputes make_fixtures.py's row formula.
func row(id, dim int) []float32 {
	out := make([]float32, dim)
	for j := range out {
		out[j] = float32(float64((id*7+j*13)%41-20) / 3.0 * 0.01)
	}
	return out
}

func TestReadTorchSave(t *testing.T) {
	data := fixtureBin(t)
	ts, err := torchbin.Read(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, ts, 2)
	assert.Equal(t, "base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta", ts[0].Name)
	assert.Equal(t, "base_model.model.cls.predictions.decoder.trainable_tokens_delta", ts[1].Name)
	for _, tt := range ts {
		assert.Equal(t, "F32", tt.DType)
		assert.Equal(t, []int{4, 32}, tt.Shape)
		for k, id := range []int{200, 5, 100, 7} {
			want := row(id, 32)
			for j := range 32 {
				got := math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[(k*32+j)*4:]))
				require.Equal(t, want[j], got, "%s row %d col %d", tt.Name, k, j)
			}
		}
	}
}

// rewrite copies the fixture's zip, passing every entry's content through
// edit (by name), stored uncompressed unless compress is set.
func rewrite(t *testing.T, edit func(name string, b []byte) []byte, compress bool) []byte {
	t.Helper()
	data := fixtureBin(t)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		require.NoError(t, err)
		rc.Close()
		method := zip.Store
		if compress && strings.Contains(f.Name, "/data/") {
			method = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: method})
		require.NoError(t, err)
		_, err = w.Write(edit(f.Name, b.Bytes()))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return out.Bytes()
}

func TestReadRefusesWhatIsNotTensorReconstruction(t *testing.T) {
	pkl := func(f func(b []byte) []byte) func(string, []byte) []byte {
		return func(name string, b []byte) []byte {
			if strings.HasSuffix(name, "data.pkl") {
				return f(b)
			}
			return b
		}
	}
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"not a zip", []byte("PK\x03\x04 garbage"), "not a zip archive"},
		{"os.system global", rewrite(t, pkl(func(b []byte) []byte {
			return bytes.Replace(b, []byte("ctorch._utils\n_rebuild_tensor_v2\n"), []byte("cos\nsystem\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"), 1)
		}), false), "global os.system is not allowed"},
		{"storage size lie", rewrite(t, func(name string, b []byte) []byte {
			if strings.HasSuffix(name, "/data/0") {
				return b[:len(b)-4]
			}
			return b
		}, false), "declares 128 elements (512 bytes), its zip entry has 508"},
		{"compressed storage", rewrite(t, func(_ string, b []byte) []byte { return b }, true), "storage entry is compressed"},
		{"unknown opcode", rewrite(t, pkl(func(b []byte) []byte { return append(b[:len(b)-1], 'i', '.') }), false), "pickle opcode 0x69"},
		{"truncated pickle", rewrite(t, pkl(func(b []byte) []byte { return b[:len(b)/2] }), false), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := torchbin.Read(bytes.NewReader(c.file), int64(len(c.file)))
			require.Error(t, err)
			assert.ErrorIs(t, err, torchbin.ErrFormat)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// FuzzRead: any input is an error or tensors that fit the file; never a
// panic, a hang or an allocation beyond the input's size.
func FuzzRead(f *testing.F) {
	data := fixtureBin(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := torchbin.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		total := 0
		for _, tt := range ts {
			n := 1
			for _, d := range tt.Shape {
				n *= d
			}
			size := map[string]int{"F32": 4, "F64": 8, "F16": 2, "BF16": 2}[tt.DType]
			if len(tt.Data) != n*size {
				t.Fatalf("%s: %d bytes for shape %v %s", tt.Name, len(tt.Data), tt.Shape, tt.DType)
			}
			total += len(tt.Data)
		}
		if total > len(b) {
			t.Fatalf("%d tensor bytes from a %d-byte file", total, len(b))
		}
	})
}
