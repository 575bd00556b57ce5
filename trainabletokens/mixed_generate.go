package trainabletokens

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/mat"

	"github.com/gopeft/gopeft/finetune"
)

// MixedGenerateBART decodes a batch of sources greedily in one batched
// generation (finetune.GenerateBART, the fast inference path), source s
// with adapter adapters[s] ("" for the base without live adapters), and
// returns the generated ids of each (decoder start included): the same ids
// as generating that source alone after SetActive(adapters[s]). Adapters
// may overlap in ids. Only adapters on the shared token table (and its
// tied lm_head) can be mixed this way; others are refused.
func (m *Model) MixedGenerateBART(sources [][]int, adapters []string, opts finetune.GenerateOptions) ([][]int, error) {
	return mixed(m, "MixedGenerateBART", "sources", len(sources), adapters, bartProjection,
		func(gen *bart.ModelForConditionalGeneration, rows []finetune.SampleRows) ([][]int, error) {
			table := gen.Bart.Embeddings
			inputs := make([]finetune.Seq2SeqInput, len(sources))
			for s, src := range sources {
				in := finetune.Seq2SeqInput{Source: src}
				for e, byID := range rows[s].Input {
					if e != table {
						return nil, fmt.Errorf("trainabletokens: MixedGenerateBART: adapter rows in a table other than the shared token table (model.shared) cannot be mixed in generation")
					}
					in.Rows = tensors(byID)
				}
				if len(rows[s].Output) > 0 {
					in.OutputRows = tensors(rows[s].Output)
				}
				inputs[s] = in
			}
			return finetune.GenerateBART(gen, inputs, opts)
		})
}

func tensors(byID map[int]mat.Matrix) map[int]mat.Tensor {
	out := make(map[int]mat.Tensor, len(byID))
	for id, v := range byID {
		out[id] = v
	}
	return out
}
