package trainabletokens

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/safetensors"
)

// saveHook, when set (by tests), is called at each stage of Save's file
// writing (see atomicfile.Options.Hook); an error it returns aborts the
// save there, as an I/O error would.
var saveHook func(stage string) error

// Save writes the named adapter ("" means the first one added) to dir in
// PEFT's layout (adapter_config.json and adapter_model.safetensors), so
// that PEFT's PeftModel.from_pretrained and Load read it back. The rows
// written are the adapter's current rows, whether it is active, inactive
// or merged.
//
// Like PEFT's save_pretrained, Save writes its two files into dir (created
// if missing) and touches nothing else: the directory itself (inode, owner,
// mode), the other files and sub-directories in it, file systems mounted
// inside it and processes working in it are left as they are. Each file is
// written to a temporary file in dir, fsynced and renamed over the old one
// (the weights first, then the config), then dir is fsynced. On any error
// the temporary files are removed, a file already renamed is put back and
// directories Save created are removed again: dir holds the previous
// adapter (or nothing). A reader never sees a partial file. A crash
// between the two renames can leave the new weights beside the old config:
// the weights record the token_indices (or, for long lists, their digest)
// and, in their tensor keys, the target modules, and Load refuses a pair
// whose config disagrees with an error naming both files (a pair that
// differs only in rows or in fields such as base_model_name_or_path is
// consistent and loads). A destination that exists and is not a regular file
// (a directory, symbolic link, FIFO, ...) is refused before anything is
// written.
func (m *Model) Save(dir, name string, opts SaveOptions) error {
	if dir == "" {
		return fmt.Errorf("trainabletokens: save: empty directory name")
	}
	files, err := m.encode(name, opts)
	if err != nil {
		return err
	}
	undo, err := atomicfile.MkdirAll(dir)
	if err != nil {
		return fmt.Errorf("trainabletokens: save: %w", err)
	}
	err = atomicfile.WriteFiles(dir, []atomicfile.File{
		{Name: WeightsFile, Data: files[WeightsFile], Perm: 0o644},
		{Name: ConfigFile, Data: files[ConfigFile], Perm: 0o644},
	}, atomicfile.Options{AllOrNothing: true, Hook: saveHook})
	if err != nil {
		undo()
		return fmt.Errorf("trainabletokens: save %s: %w", dir, err)
	}
	return nil
}

// encode renders the adapter's two files under the read lock.
func (m *Model) encode(name string, opts SaveOptions) (map[string][]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.unloaded {
		return nil, ErrUnloaded
	}
	if name == "" {
		if len(m.names) == 0 {
			return nil, fmt.Errorf("%w: the model has no adapter to save", ErrUnknownAdapter)
		}
		name = m.names[0]
	}
	if err := m.lookup([]string{name}); err != nil {
		return nil, err
	}
	a := m.adapters[name]
	cfg := peftConfigFile{
		InferenceMode: true,
		InitWeights:   a.cfg.InitWeights == InitFromBase,
		PeftType:      PeftType,
		PeftVersion:   PEFTVersion,
		TokenIndices:  append([]int{}, a.cfg.TokenIndices...),
	}
	if m.layout.HFClass != "" { // registry knows the transformers class
		cfg.AutoMapping = &autoMapping{BaseModelClass: m.layout.HFClass, ParentLibrary: m.layout.HFModule}
	}
	if opts.BaseModelNameOrPath != "" {
		cfg.BaseModelNameOrPath = &opts.BaseModelNameOrPath
	}
	if opts.Revision != "" {
		cfg.Revision = &opts.Revision
	}
	switch {
	case a.cfg.TargetRegex != "":
		cfg.TargetModules = a.cfg.TargetRegex
	case len(a.cfg.TargetModules) > 0:
		cfg.TargetModules = append([]string(nil), a.cfg.TargetModules...)
	default: // resolved to the input embedding: PEFT writes its name as a string
		cfg.TargetModules = a.targets[0].group.Table.HFPath
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}

	ids, _ := json.Marshal(a.cfg.TokenIndices)
	meta := map[string]string{
		metaFormat:  "pt",
		metaGopeft:  gopeftFormatValue,
		metaAdapter: name,
	}
	if len(ids) <= maxInlineIndices {
		meta[metaTokenIndices] = string(ids)
	} else {
		meta[metaTokenIndicesDigest] = indicesDigest(a.cfg.TokenIndices)
	}
	var tensors []safetensors.Tensor
	peftMods := m.peftModules(a)
	for i, t := range a.targets {
		tab := t.group.Table
		dim := tab.Embedding.Dim
		for k, id := range t.ids {
			if ok, col := rows.Finite(t.rows[k].Value().(mat.Matrix), 0, dim); !ok {
				return nil, fmt.Errorf("%w: adapter %q, token id %d of %s has a NaN or Inf at column %d; nothing was saved (Load would refuse the file)",
					ErrNotFinite, name, id, tab.HFPath, col)
			}
		}
		data, dtype, err := encodeRows(t.rows, dim)
		if err != nil {
			return nil, fmt.Errorf("trainabletokens: saving %s: %w", tab.HFPath, err)
		}
		modules := peftMods[i]
		if opts.CompactTied {
			modules = []string{compactModule(t, modules)}
		}
		for _, mod := range modules {
			tensors = append(tensors, safetensors.Tensor{Name: tensorKey(mod), DType: dtype, Shape: []int{len(t.ids), dim}, Data: data})
		}
		if opts.SaveEmbeddingLayers {
			layers, err := m.baseLayers(t, modules)
			if err != nil {
				return nil, fmt.Errorf("trainabletokens: saving %s: %w", tab.HFPath, err)
			}
			tensors = append(tensors, layers...)
		}
		meta[metaVocabPrefix+tab.HFPath] = strconv.Itoa(len(tab.Embedding.Weights))
		meta[metaDimPrefix+tab.HFPath] = strconv.Itoa(dim)
	}
	if opts.ModulesToSave {
		heads, err := headTensors(m.base)
		if err != nil {
			return nil, err
		}
		tensors = append(tensors, heads...)
	}
	st, err := safetensors.Encode(meta, tensors)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{ConfigFile: cfgJSON, WeightsFile: st}, nil
}

// encodeRows lays k row params of width dim out as encodeMatrices does.
func encodeRows(ps []*nn.Param, dim int) ([]byte, safetensors.DType, error) {
	ms := make([]mat.Matrix, len(ps))
	for i, p := range ps {
		ms[i] = p.Value().(mat.Matrix)
	}
	return encodeMatrices(ms, dim)
}
