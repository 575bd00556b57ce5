package walk_test

import (
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/walk"
)

type inner struct {
	Table *embedding.Model
}

type model struct {
	nn.Module
	A      inner
	Shared embedding.Shared
	List   []*embedding.Model
	hidden *embedding.Model //nolint:unused // unexported fields are not walked
}

func TestWalkPathsAndShared(t *testing.T) {
	e := embedding.New[float32](3, 2)
	other := embedding.New[float32](2, 2)
	m := &model{A: inner{Table: e}, Shared: embedding.Shared{Model: e}, List: []*embedding.Model{other}, hidden: other}

	var once []string
	walk.Walk(m, func(n walk.Node) bool {
		if _, ok := n.Value.(*embedding.Model); ok {
			once = append(once, n.Path)
		}
		return true
	})
	assert.Equal(t, []string{"A.Table", "List.0"}, once, "a pointer is visited once, at its first path")

	var all []string
	walk.WalkAll(m, func(n walk.Node) {
		if _, ok := n.Value.(*embedding.Model); ok {
			all = append(all, n.Path)
		}
	})
	assert.Equal(t, []string{"A.Table", "Shared.Model", "List.0"}, all, "WalkAll reports every slot")

	params := 0
	walk.WalkAll(m, func(n walk.Node) {
		if _, ok := n.Value.(*nn.Param); ok {
			params++
		}
	})
	assert.Equal(t, 3+2, params, "every embedding row, once per table")
}

func TestSet(t *testing.T) {
	e, f := embedding.New[float32](1, 1), embedding.New[float32](1, 1)
	m := &model{A: inner{Table: e}}
	var node walk.Node
	walk.Walk(m, func(n walk.Node) bool {
		if n.Path == "A.Table" {
			node = n
		}
		return true
	})
	require.True(t, node.Settable)
	assert.False(t, node.Set("not a table"), "wrong type refused")
	assert.True(t, node.Set(f))
	assert.Same(t, f, m.A.Table)
}
