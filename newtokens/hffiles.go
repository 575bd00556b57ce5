package newtokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/regular"
)

// hfTokenizerClass is the transformers class AutoTokenizer needs in
// tokenizer_config.json when the directory has no config.json (an adapter
// directory).
var hfTokenizerClass = map[string]string{KindBERT: "BertTokenizer", KindBART: "BartTokenizer"}

// WriteTokenizerFiles writes tok's tokenizer files, added tokens included,
// into an adapter directory written by trainabletokens' Save, so that
// Hugging Face loads the adapter the documented way: PEFT's
// AutoPeftModel.from_pretrained(dir) loads base_model_name_or_path, sees
// dir/tokenizer_config.json, loads AutoTokenizer.from_pretrained(dir) and
// resizes the base to len(tokenizer) before applying the rows (peft/auto.py),
// so new-token ids exist. It writes tokenizer_config.json (the base
// directory's, when baseDir has one, with "tokenizer_class" added if it
// lacks it, since the adapter directory has no config.json to name the
// tokenizer), then what WriteVocabFiles writes (vocab.txt or
// vocab.json + merges.txt, added_tokens.json). Other files are not touched.
func WriteTokenizerFiles(dir string, tok *Tokenizer, baseDir string) error {
	if tok == nil {
		return fmt.Errorf("newtokens: WriteTokenizerFiles: tokenizer is nil")
	}
	class := hfTokenizerClass[tok.Kind()]
	if class == "" {
		return fmt.Errorf("newtokens: WriteTokenizerFiles: no transformers tokenizer class for kind %q", tok.Kind())
	}
	cfg := map[string]any{}
	if baseDir != "" {
		data, err := regular.ReadFile(filepath.Join(baseDir, "tokenizer_config.json"), 1<<20)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("newtokens: WriteTokenizerFiles: %w", err)
		default:
			if err := json.Unmarshal(data, &cfg); err != nil || cfg == nil {
				return fmt.Errorf("newtokens: WriteTokenizerFiles: %s/tokenizer_config.json is not a JSON object: %v", baseDir, err)
			}
		}
	}
	if _, ok := cfg["tokenizer_class"]; !ok {
		cfg["tokenizer_class"] = class
	}
	if tok.Kind() == KindBERT {
		if _, ok := cfg["do_lower_case"]; !ok {
			cfg["do_lower_case"] = tok.LowerCase()
		}
	}
	data, err := json.MarshalIndent(cfg, "", "  ") // sorted keys, as transformers writes them
	if err != nil {
		return fmt.Errorf("newtokens: WriteTokenizerFiles: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("newtokens: WriteTokenizerFiles: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("newtokens: WriteTokenizerFiles: %w", err)
	}
	return WriteVocabFiles(dir, tok)
}
