package models

// ELECTRA: cybertron's converter accepts model_type "electra" and maps its
// encoder onto cybertron's BERT ("electra." → "bert."), but it knows only
// BERT architecture names: an ElectraForMaskedLM checkpoint (ELECTRA's
// generator, the one ELECTRA model with a token-prediction head) makes it
// panic, and the generator's head (generator_predictions, generator_lm_head)
// is never mapped. ConvertELECTRA converts the encoder with cybertron's own
// converter and fills the masked-LM head from the checkpoint, which gives a
// *bert.ModelForMaskedLM whose Config.ModelType stays "electra".

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/cybertron/pkg/converter/pytorch"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/internal/regular"
)

// ELECTRAArchitecture is the ELECTRA architecture gopeft serves: the
// generator, a masked LM whose output head is tied to the word embeddings.
const ELECTRAArchitecture = "ElectraForMaskedLM"

// modelConfig reads config.json as a generic object, so that it can be
// written back with one field changed.
func modelConfig(dir string) (map[string]any, error) {
	path := filepath.Join(dir, "config.json")
	data, err := regular.ReadFile(path, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("models: %s: malformed JSON: %w", path, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("models: %s: not a JSON object", path)
	}
	return cfg, nil
}

// modelType returns config.json's model_type ("" when absent).
func modelType(dir string) (string, error) {
	cfg, err := modelConfig(dir)
	if err != nil {
		return "", err
	}
	s, _ := cfg["model_type"].(string)
	return s, nil
}

// checkELECTRA says whether gopeft can serve the ELECTRA checkpoint whose
// config is cfg, and why not.
func checkELECTRA(cfg map[string]any) error {
	arch := ""
	switch a := cfg["architectures"].(type) {
	case []any:
		if len(a) > 0 {
			arch, _ = a[0].(string)
		}
	}
	if arch != ELECTRAArchitecture {
		return fmt.Errorf("models: ELECTRA architecture %q is not supported: cybertron v0.2.1 has no ELECTRA heads "+
			"(its converter panics on ELECTRA architecture names); gopeft serves ELECTRA's generator, %s",
			arch, ELECTRAArchitecture)
	}
	hidden, _ := cfg["hidden_size"].(float64)
	if e, ok := cfg["embedding_size"].(float64); ok && e != hidden {
		return fmt.Errorf("models: ELECTRA with embedding_size %v and hidden_size %v is not supported: "+
			"cybertron v0.2.1's converter does not map ELECTRA's embeddings_project, so only embedding_size = hidden_size converts", e, hidden)
	}
	return nil
}

// ConvertELECTRA converts the Hugging Face ELECTRA generator
// (ElectraForMaskedLM) in dir into dir/spago_model.bin, a cybertron
// *bert.ModelForMaskedLM. The encoder is converted by cybertron's own
// converter in a temporary directory (holding links to dir's files and a
// config.json naming cybertron's BERT masked-LM architecture); the head is
// then read from dir/pytorch_model.bin. An existing spago_model.bin is kept
// unless overwrite is set. Other ELECTRA checkpoints (the discriminator,
// task heads, embedding_size ≠ hidden_size) return an error naming ELECTRA.
func ConvertELECTRA(dir string, overwrite bool) error {
	cfg, err := modelConfig(dir)
	if err != nil {
		return err
	}
	if mt, _ := cfg["model_type"].(string); mt != "electra" {
		return fmt.Errorf("models: %s holds model_type %q, not an ELECTRA checkpoint", dir, mt)
	}
	if err := checkELECTRA(cfg); err != nil {
		return err
	}
	if err := regular.Check(filepath.Join(dir, SpagoFile)); err == nil && !overwrite {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("models: %w", err)
	}
	src, err := filepath.Abs(filepath.Join(dir, "pytorch_model.bin"))
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := regular.Check(src); err != nil {
		return fmt.Errorf("models: nothing to convert in %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "gopeft-electra-")
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range []string{"pytorch_model.bin", "vocab.txt", "tokenizer_config.json"} {
		from, err := filepath.Abs(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("models: %w", err)
		}
		if err := regular.Check(from); err != nil {
			if name == "tokenizer_config.json" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("models: ELECTRA checkpoint %s: %w", dir, err)
		}
		if err := os.Symlink(from, filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("models: %w", err)
		}
	}
	bertCfg := make(map[string]any, len(cfg))
	for k, v := range cfg {
		bertCfg[k] = v
	}
	bertCfg["architectures"] = []string{"BertForMaskedLM"}
	data, err := json.Marshal(bertCfg)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), data, 0o644); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := convertQuiet(tmp); err != nil {
		return fmt.Errorf("models: converting the ELECTRA encoder of %s: %w", dir, err)
	}
	m, err := nn.LoadFromFile[*bert.ModelForMaskedLM](filepath.Join(tmp, SpagoFile))
	if err != nil {
		return fmt.Errorf("models: loading the converted ELECTRA encoder of %s: %w", dir, err)
	}
	if err := fillELECTRAHead(m, src); err != nil {
		return err
	}
	return Save(m, dir)
}

// convertQuiet runs cybertron's float32 converter in dir without its
// stdout line and debug report, turning a converter panic into an error
// (convertQuietly: a child process, no process-wide state touched).
func convertQuiet(dir string) error { return convertQuietly(dir) }

// electraHead maps the generator's head tensors onto the masked-LM layers
// cybertron builds (dense, activation, LayerNorm, output linear).
var electraHead = []struct {
	name  string
	layer int
	bias  bool
}{
	{"generator_predictions.dense.weight", 0, false},
	{"generator_predictions.dense.bias", 0, true},
	{"generator_predictions.LayerNorm.weight", 2, false},
	{"generator_predictions.LayerNorm.bias", 2, true},
	{"generator_lm_head.weight", 3, false},
	{"generator_lm_head.bias", 3, true},
}

func fillELECTRAHead(m *bert.ModelForMaskedLM, file string) error {
	if len(m.Layers) != 4 {
		return fmt.Errorf("models: converted ELECTRA masked-LM head has %d layers, want 4", len(m.Layers))
	}
	// Load calls the pre-processing function unconditionally.
	params := pytorch.NewParamsProvider[float32]().
		WithPreProcessing(func(*pytorch.ParamsProvider[float32]) error { return nil })
	if err := params.Load(file); err != nil {
		return fmt.Errorf("models: reading %s: %w", file, err)
	}
	for _, h := range electraHead {
		var p *nn.Param
		switch l := m.Layers[h.layer].(type) {
		case *linear.Model:
			p = l.W
			if h.bias {
				p = l.B
			}
		case *layernorm.Model:
			p = l.W
			if h.bias {
				p = l.B
			}
		default:
			return fmt.Errorf("models: ELECTRA masked-LM head layer %d is %T, want a linear or layer norm", h.layer, l)
		}
		data := params.Get(h.name)
		if data == nil {
			return fmt.Errorf("models: ELECTRA checkpoint %s has no %s", file, h.name)
		}
		if len(data) != p.Value().Size() {
			return fmt.Errorf("models: ELECTRA %s has %d values, cybertron's head expects %d", h.name, len(data), p.Value().Size())
		}
		mat.SetData[float32](p.Value(), data)
	}
	return nil
}
