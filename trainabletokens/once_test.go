package trainabletokens

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/registry"
)

// countedModel is a one-table model whose registered accessor counts how
// often the model is described.
type countedModel struct {
	nn.Module
	Emb *embedding.Model
}

var (
	describeCalls atomic.Int64
	registerOnce  sync.Once
)

func newCountedModel(t *testing.T) *countedModel {
	t.Helper()
	registerOnce.Do(func() {
		registry.RegisterModel(&countedModel{}, func(model nn.Model) (*registry.Layout, error) {
			describeCalls.Add(1)
			m := model.(*countedModel)
			return &registry.Layout{Model: m, Architecture: "countedModel", Tables: []*registry.Table{
				{Embedding: m.Emb, Path: "Emb", HFPath: "emb", Names: []string{"emb", "Emb"}, Input: true},
			}}, nil
		})
	})
	return &countedModel{Emb: embedding.New[float32](20, 4)}
}

// TestDescribedOncePerCall: New, Load and LoadAdapter describe the model
// once per call (issue 9: Load used to describe it three times).
func TestDescribedOncePerCall(t *testing.T) {
	m := newCountedModel(t)
	describeCalls.Store(0)
	tm, err := New(m, Config{TokenIndices: []int{3, 4}}, "")
	require.NoError(t, err)
	assert.Equal(t, int64(1), describeCalls.Load(), "New")
	dir := filepath.Join(t.TempDir(), "a")
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))

	describeCalls.Store(0)
	tm2, err := Load(newCountedModel(t), dir, "")
	require.NoError(t, err)
	assert.Equal(t, int64(1), describeCalls.Load(), "Load")

	other := filepath.Join(t.TempDir(), "b")
	tm3, err := New(newCountedModel(t), Config{TokenIndices: []int{5}}, "")
	require.NoError(t, err)
	require.NoError(t, tm3.Save(other, "", SaveOptions{}))
	describeCalls.Store(0)
	require.NoError(t, tm2.LoadAdapter(other, "b"))
	assert.Equal(t, int64(0), describeCalls.Load(), "LoadAdapter uses the model's layout")
}
