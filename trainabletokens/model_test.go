package trainabletokens

import (
	"bytes"
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
)

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "TokenIndices is empty"},
		{"negative", Config{TokenIndices: []int{5, -3}}, "TokenIndices[1] = -3 is negative"},
		{"duplicate", Config{TokenIndices: []int{7, 8, 7}}, "token id 7 appears twice"},
		{"out of range", Config{TokenIndices: []int{10, 1038}}, "TokenIndices[1] = 1038 is out of range for bert.embeddings.word_embeddings: allowed [0, 1038)"},
		{"bad init", Config{TokenIndices: []int{1}, InitWeights: 7}, "InitWeights = 7"},
		{"names and regex", Config{TokenIndices: []int{1}, TargetModules: []string{"x"}, TargetRegex: "y"}, "not both"},
		{"unknown target", Config{TokenIndices: []int{1}, TargetModules: []string{"doesnt_exist"}}, `"doesnt_exist" matches no embedding module`},
		{"bad regex", Config{TokenIndices: []int{1}, TargetRegex: "(("}, "invalid regular expression"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := loadedBERT(t)
			before := snapshot(m)
			_, err := New(m, tc.cfg, "")
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.want)
			requireSame(t, before, m) // nothing modified
		})
	}
	t.Run("unknown target lists embedding paths", func(t *testing.T) {
		_, err := New(loadedBART(t), Config{TokenIndices: []int{1}, TargetModules: []string{"nope"}}, "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "model.shared")
		assert.Contains(t, err.Error(), "model.encoder.embed_positions")
	})
}

func TestInitFromBaseIsNoOp(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := loadedBERT(t)
		tokens := []string{"[CLS]", "the", "[MASK]", "is", "red", "[SEP]"}
		want := predict(m, tokens)
		tm, err := New(m, Config{TokenIndices: []int{5, 100, 200, m.Bert.Embeddings.Vocab.MustID("the")}}, "")
		require.NoError(t, err)
		var got map[int][]float64
		require.NoError(t, tm.Do(func() error { got = predict(m, tokens); return nil }))
		assertBits(t, want, got)
	})
	t.Run("bart", func(t *testing.T) {
		m := loadedBART(t)
		src := []int{0, 50, 60, 70, 2}
		want := bartLogits(m, src)
		tm, err := New(m, Config{TokenIndices: []int{50, 60, 400}}, "")
		require.NoError(t, err)
		var got map[int][]float64
		require.NoError(t, tm.Do(func() error { got = bartLogits(m, src); return nil }))
		assertBits(t, want, got)
	})
}

func TestInitRandom(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{10, 11}, InitWeights: InitRandom, Seed: 3}, "")
	require.NoError(t, err)
	rs, err := tm.Rows("default", "")
	require.NoError(t, err)
	vals := rows.Get(rs[0].Value().(mat.Matrix), 0, rs[0].Value().Size())
	var sum, sq float64
	for _, v := range vals {
		sum += v
		sq += v * v
	}
	n := float64(len(vals))
	assert.InDelta(t, 1.0, math.Sqrt(sq/n-(sum/n)*(sum/n)), 0.5, "N(0,1) rows")
	assert.NotEqual(t, rows.Get(m.Bert.Embeddings.Tokens.Weights[10].Value().(mat.Matrix), 0, 32), rows.Get(tm.pristine[m.Bert.Embeddings.Tokens][10].value, 0, 32))
	// Same seed, same rows.
	tm2, err := New(loadedBERT(t), Config{TokenIndices: []int{10, 11}, InitWeights: InitRandom, Seed: 3}, "")
	require.NoError(t, err)
	rs2, _ := tm2.Rows("default", "")
	assert.Equal(t, vals, rows.Get(rs2[0].Value().(mat.Matrix), 0, 32))
}

// bertTied returns the pieces of the BERT gradient graph.
func bertTied(m *bert.ModelForMaskedLM) (*linear.Model, func(tm *Model, t *testing.T) mat.Tensor) {
	head := m.Layers[3].(*linear.Model)
	return head, func(tm *Model, t *testing.T) mat.Tensor {
		return lmLoss(t, tm, m.Bert.Embeddings.Tokens, head, []int{5, 100, 200, 7}, []int{100, 200, 5, 100})
	}
}

func TestGradientMaskAndTraining(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model func(t *testing.T) *bert.ModelForMaskedLM
	}{{"loaded", loadedBERT}, {"fresh", freshBERT}} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model(t)
			before := snapshot(m)
			ids := []int{5, 100, 200}
			if m.Bert.Config.VocabSize < 201 {
				ids = []int{5, 10, 20}
			}
			tm, err := New(m, Config{TokenIndices: ids}, "")
			require.NoError(t, err)
			trainable := tm.TrainableParams()
			require.Len(t, trainable, 3)
			isTrainable := map[*nn.Param]bool{}
			for _, p := range trainable {
				isTrainable[p] = true
			}
			// Only the k rows require gradients.
			walk.WalkAll(m, func(n walk.Node) {
				if p, ok := n.Value.(*nn.Param); ok {
					assert.Equal(t, isTrainable[p], p.RequiresGrad(), n.Path)
				}
			})
			head := m.Layers[3].(*linear.Model)
			input, target := []int{ids[0], ids[1], 7, ids[2]}, []int{ids[1], ids[2], ids[0], 8}
			opt := adam.New(adam.NewConfig(0.05, 0.9, 0.999, 1e-8))
			var first, last float64
			for step := 0; step < 15; step++ {
				loss := lmLoss(t, tm, m.Bert.Embeddings.Tokens, head, input, target)
				require.NoError(t, ag.Backward(loss))
				if step == 0 {
					first = loss.Value().Item().F64()
					// Exactly the trainable rows hold gradients.
					walk.WalkAll(m, func(n walk.Node) {
						if p, ok := n.Value.(*nn.Param); ok {
							assert.Equal(t, isTrainable[p], p.HasGrad(), n.Path)
						}
					})
				}
				last = loss.Value().Item().F64()
				for _, p := range trainable {
					require.NoError(t, opt.OptimizeParams(p))
				}
				opt.IncExample()
				m.Bert.Embeddings.Tokens.ZeroGrad()
				require.NoError(t, tm.Sync())
			}
			assert.Less(t, last, first*0.8, "loss falls: %.4f -> %.4f", first, last)
			// Optimizer state only on the trainable rows.
			walk.WalkAll(m, func(n walk.Node) {
				if p, ok := n.Value.(*nn.Param); ok {
					assert.Equal(t, isTrainable[p], p.State != nil, n.Path)
				}
			})
			// The tied decoder carries the trained rows.
			for k, id := range ids {
				assert.Equal(t, 0.0, rows.MaxAbsDiff(head.W.Value().(mat.Matrix), id, trainable[k].Value().(mat.Matrix), 0, head.W.Value().Shape()[1]))
			}
			// Every base parameter is bit-identical to before.
			_, err = tm.Unload()
			require.NoError(t, err)
			requireSame(t, before, m)
		})
	}
}

func TestBARTSharedAndProjectionFollow(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{50, 60}, TargetModules: []string{"embed_tokens"}}, "")
	require.NoError(t, err)
	rs := tm.TrainableParams()
	require.Len(t, rs, 2, "one shared table trained once")
	// Encoder, decoder and the model's table see the same row params.
	assert.Same(t, rs[0], m.Bart.Embeddings.Weights[50])
	assert.Same(t, rs[0], m.Bart.Encoder.Embeddings.SharedEmbeddings.Weights[50])
	assert.Same(t, rs[1], m.Bart.Decoder.Embeddings.SharedEmbeddings.Weights[60])
	// Move a row; after Sync the LM head logits for id 50 follow.
	vals := rows.Get(rs[0].Value().(mat.Matrix), 0, 32)
	for i := range vals {
		vals[i] = float64(i) / 10
	}
	require.NoError(t, rows.Set(rs[0].Value().(mat.Matrix), 0, vals))
	require.NoError(t, tm.Sync())
	assert.Equal(t, rows.Get(rs[0].Value().(mat.Matrix), 0, 32), rows.Get(m.Projection.W.Value().(mat.Matrix), 50, 32))
	r, err := tm.Report()
	require.NoError(t, err)
	assert.Contains(t, r.String(), "tied copy: lm_head")
	assert.Contains(t, r.String(), "shared by 3 slots")
}

func TestMergeUnmergeAndUnload(t *testing.T) {
	m := loadedBERT(t)
	before := snapshot(m)
	tokens := []string{"[CLS]", "the", "[MASK]", "is", "red", "[SEP]"}
	ids := []int{m.Bert.Embeddings.Vocab.MustID("the"), m.Bert.Embeddings.Vocab.MustID("red"), 300}
	tm, err := New(m, Config{TokenIndices: ids}, "a")
	require.NoError(t, err)
	for k, p := range tm.TrainableParams() {
		vals := rows.Get(p.Value().(mat.Matrix), 0, 32)
		for i := range vals {
			vals[i] += 0.01 * float64(k+i)
		}
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, vals))
	}
	require.NoError(t, tm.Sync())
	var trained map[int][]float64
	require.NoError(t, tm.Do(func() error { trained = predict(m, tokens); return nil }))
	require.NoError(t, tm.Merge(true))
	assert.Equal(t, []string{"a"}, tm.Merged())
	assert.Empty(t, tm.TrainableParams(), "merged rows do not train")
	var merged map[int][]float64
	require.NoError(t, tm.Do(func() error { merged = predict(m, tokens); return nil }))
	assertBits(t, trained, merged)
	require.NoError(t, tm.Unmerge())
	require.NoError(t, tm.Disable())
	requireSameValues(t, before, m)
	require.NoError(t, tm.Enable())
	var again map[int][]float64
	require.NoError(t, tm.Do(func() error { again = predict(m, tokens); return nil }))
	assertBits(t, trained, again)

	t.Run("safe merge refuses NaN and writes nothing", func(t *testing.T) {
		p := tm.TrainableParams()[1]
		old := rows.Get(p.Value().(mat.Matrix), 0, 32)
		bad := append([]float64(nil), old...)
		bad[3] = math.NaN()
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, bad))
		err := tm.Merge(true)
		require.ErrorIs(t, err, ErrNotFinite)
		assert.Contains(t, err.Error(), "column 3")
		assert.Empty(t, tm.Merged())
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, old))
	})

	_, err = tm.Unload()
	require.NoError(t, err)
	requireSame(t, before, m)
	_, err = tm.Unload()
	assert.ErrorIs(t, err, ErrUnloaded)
	assert.ErrorIs(t, tm.SetActive("a"), ErrUnloaded)
}

func TestMergeAndUnloadGivesPlainModel(t *testing.T) {
	m := loadedBART(t)
	flags := snapshot(m).flags
	tm, err := New(m, Config{TokenIndices: []int{40, 41}}, "")
	require.NoError(t, err)
	rs := tm.TrainableParams()
	vals := rows.Get(rs[0].Value().(mat.Matrix), 0, 32)
	vals[0] += 1
	require.NoError(t, rows.Set(rs[0].Value().(mat.Matrix), 0, vals))
	src := []int{0, 40, 41, 70, 2}
	require.NoError(t, tm.Sync())
	var want map[int][]float64
	require.NoError(t, tm.Do(func() error { want = bartLogits(m, src); return nil }))
	plain, err := tm.MergeAndUnload(true)
	require.NoError(t, err)
	assert.Equal(t, flags, snapshot(plain).flags, "requiresGrad restored")
	for _, p := range snapshot(plain).params {
		assert.NotSame(t, rs[0], p, "no adapter row left in the model")
	}
	assert.Equal(t, rows.Get(rs[0].Value().(mat.Matrix), 0, 32), rows.Get(m.Projection.W.Value().(mat.Matrix), 40, 32), "tied copy merged")
	assert.Equal(t, rows.Get(rs[0].Value().(mat.Matrix), 0, 32), rows.Get(m.Bart.Embeddings.Weights[40].Value().(mat.Matrix), 0, 32), "table merged")
	// A gob round trip of the plain model gives the same outputs.
	var buf bytes.Buffer
	require.NoError(t, nn.Dump(plain, &buf))
	loaded, err := nn.Load[*bart.ModelForConditionalGeneration](&buf)
	require.NoError(t, err)
	loaded.Bart.Encoder.Embeddings.SharedEmbeddings.Model = loaded.Bart.Embeddings
	loaded.Bart.Decoder.Embeddings.SharedEmbeddings.Model = loaded.Bart.Embeddings
	assertBits(t, want, bartLogits(loaded, src))
}

func TestAdapters(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{10, 11, 12}}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{12, 13}}))
	require.NoError(t, tm.AddAdapter("c", Config{TokenIndices: []int{20}}))
	assert.Equal(t, []string{"a"}, tm.Active(), "added adapters start inactive")
	assert.Len(t, tm.TrainableParams(), 3)

	err = tm.SetActive("a", "b")
	require.ErrorIs(t, err, ErrOverlap)
	assert.Contains(t, err.Error(), `"a" and "b"`)
	assert.Contains(t, err.Error(), "[12]")
	assert.Equal(t, []string{"a"}, tm.Active(), "unchanged on error")

	require.NoError(t, tm.SetActive("a", "c"))
	assert.Len(t, tm.TrainableParams(), 4)
	assert.Same(t, tm.TrainableParams()[3], m.Bert.Embeddings.Tokens.Weights[20])

	require.ErrorIs(t, tm.SetActive("zzz"), ErrUnknownAdapter)
	require.ErrorIs(t, tm.AddAdapter("a", Config{TokenIndices: []int{1}}), ErrInvalidConfig)

	require.NoError(t, tm.Merge(false, "a"))
	err = tm.Merge(false, "b")
	require.ErrorIs(t, err, ErrOverlap, "overlap with an already merged adapter")
	assert.Contains(t, err.Error(), `"a" and "b"`)
	err = tm.Delete("a")
	require.ErrorIs(t, err, ErrMerged)
	require.NoError(t, tm.Unmerge())
	require.NoError(t, tm.Delete("a"))
	assert.Equal(t, []string{"c"}, tm.Active())
	assert.Equal(t, []string{"b", "c"}, tm.Adapters())

	require.NoError(t, tm.Disable())
	assert.Empty(t, tm.TrainableParams())
	assert.NotSame(t, tm.adapters["c"].targets[0].rows[0], m.Bert.Embeddings.Tokens.Weights[20])
	require.NoError(t, tm.Enable())
	assert.Same(t, tm.adapters["c"].targets[0].rows[0], m.Bert.Embeddings.Tokens.Weights[20])
}

func TestMultipleTargetsAreIndependent(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{1, 2}, TargetModules: []string{"word_embeddings", "position_embeddings"}}, "")
	require.NoError(t, err)
	words, err := tm.Rows("default", "word_embeddings")
	require.Error(t, err, "Rows takes a full module name")
	words, err = tm.Rows("default", "bert.embeddings.word_embeddings")
	require.NoError(t, err)
	pos, err := tm.Rows("default", "bert.embeddings.position_embeddings")
	require.NoError(t, err)
	assert.Len(t, tm.TrainableParams(), 4)
	assert.NotSame(t, words[0], pos[0])
	assert.Same(t, pos[1], m.Bert.Embeddings.Positions.Weights[2])
	r, err := tm.Report()
	require.NoError(t, err)
	assert.Equal(t, 4*32, r.Trainable)
	assert.Contains(t, r.String(), "trainable params: 128 || all params: ")
}

func TestLMHeadTargetResolvesToTable(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{9}, TargetModules: []string{"lm_head"}}, "")
	require.NoError(t, err)
	assert.Same(t, tm.TrainableParams()[0], m.Bart.Embeddings.Weights[9])
	tm2, err := New(loadedBART(t), Config{TokenIndices: []int{9}, TargetRegex: `model\.(en|de)coder\.embed_tokens`}, "")
	require.NoError(t, err)
	assert.Len(t, tm2.TrainableParams(), 1)
}

// predict runs cybertron's own MLM inference and returns plain values.
func predict(m *bert.ModelForMaskedLM, tokens []string) map[int][]float64 {
	out := map[int][]float64{}
	for pos, y := range m.Predict(tokens) {
		v := y.Value().(mat.Matrix)
		out[pos] = rows.Get(v, 0, v.Size())
	}
	return out
}

// bartLogits runs cybertron's encoder, decoder and projection.
func bartLogits(m *bart.ModelForConditionalGeneration, src []int) map[int][]float64 {
	enc := m.Bart.Encoder.Encode(src)
	dec, _ := m.Bart.Decoder.Decode(enc, []int{2, src[1], src[2]}, nil, 1)
	out := map[int][]float64{}
	for i, h := range dec {
		v := m.Projection.Forward(h)[0].Value().(mat.Matrix)
		out[i] = rows.Get(v, 0, v.Size())
	}
	return out
}

func assertBits(t *testing.T, want, got map[int][]float64) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for k, w := range want {
		g := got[k]
		require.Len(t, g, len(w))
		for i := range w {
			if math.Float64bits(w[i]) != math.Float64bits(g[i]) {
				t.Fatalf("output %d[%d]: %v != %v", k, i, w[i], g[i])
			}
		}
	}
}

func requireSameValues(t *testing.T, s paramState, m nn.Model) {
	t.Helper()
	now := snapshot(m)
	require.Equal(t, len(s.values), len(now.values))
	for i := range s.values {
		require.Equal(t, s.values[i], now.values[i], "param %d", i)
	}
}
