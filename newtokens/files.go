package newtokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/regular"
)

const addedTokensFile = "added_tokens.json"

// WriteVocabFiles writes tok's vocabulary, including the added tokens, into
// the model directory dir (created if missing), so that cybertron's task
// loaders, which read the vocabulary files again, know the new tokens:
//   - BERT: vocab.txt, one token per line in id order (the added tokens at
//     their ids, i.e. at the end), and, only when dir has none, a
//     tokenizer_config.json holding the tokenizer's do_lower_case (cybertron's
//     BERT task loaders require that file);
//   - BART: vocab.json, the base vocabulary plus the added tokens with their
//     ids (keys in id order, non-ASCII unescaped); merges.txt is left as it
//     is, or copied from the tokenizer's source directory when dir has none;
//   - both: added_tokens.json ({"token": id, ...} in id order, as Hugging
//     Face writes it), and, when dir holds a config.json whose "vocab_size"
//     is smaller than tok.VocabSize(), that value is raised to it (other
//     keys are kept; the file is re-indented with sorted keys as Hugging
//     Face writes it).
//
// All or nothing: every file is first written to a temporary file in dir
// and fsynced; only then are they renamed into place, in this order: files
// dir lacked (tokenizer_config.json, merges.txt), added_tokens.json, the
// vocabulary, config.json. If anything fails, the files already renamed
// are put back and the error says what failed: dir holds its previous
// files, never a mix, and no temporary file. Only a crash (power loss,
// kill -9) in the middle of the renames can leave a mix, and a temporary
// file or two (names starting with "."). The order keeps such a mix
// loadable when dir held the previous vocabulary files: a new
// added_tokens.json beside the previous vocabulary is Hugging Face's layout
// (the added tokens at their ids after the vocabulary), so LoadTokenizer
// gives every added token its new id (TestWriteVocabFilesCrashStates). In
// a directory without a vocabulary the mix has no vocabulary file yet and
// LoadTokenizer refuses it. Files other than these are never touched. A
// FIFO or other special file in place of any of them is an error before
// anything is written. The model itself (spago_model.bin) is saved
// separately, e.g. with models.Save.
func WriteVocabFiles(dir string, tok *Tokenizer) error {
	if tok == nil {
		return fmt.Errorf("newtokens: WriteVocabFiles: tokenizer is nil")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("newtokens: WriteVocabFiles: %w", err)
	}
	files, err := tok.vocabFiles(dir)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFiles(dir, files, atomicfile.Options{AllOrNothing: true, Hook: vocabHook}); err != nil {
		return fmt.Errorf("newtokens: WriteVocabFiles: %w", err)
	}
	return nil
}

// vocabHook, when set (by tests), is passed to atomicfile as the stage hook.
var vocabHook func(stage string) error

// maxConfigJSON bounds the config.json WriteVocabFiles reads.
const maxConfigJSON = 16 << 20

// vocabFiles renders the files WriteVocabFiles writes, in rename order.
func (tok *Tokenizer) vocabFiles(dir string) ([]atomicfile.File, error) {
	tok.mu.RLock()
	defer tok.mu.RUnlock()

	added := append([]AddedToken(nil), tok.added...)
	sort.Slice(added, func(i, j int) bool { return added[i].ID < added[j].ID })

	var created, vocab []atomicfile.File
	switch tok.kind {
	case KindBERT:
		var b bytes.Buffer
		for _, term := range tok.vocab.Items() {
			b.WriteString(term)
			b.WriteByte('\n')
		}
		vocab = append(vocab, atomicfile.File{Name: "vocab.txt", Data: b.Bytes(), Perm: 0o644})
		// cybertron's BERT task loaders require tokenizer_config.json.
		if missing, err := absent(filepath.Join(dir, "tokenizer_config.json")); err != nil {
			return nil, err
		} else if missing {
			data := fmt.Sprintf("{\n  \"do_lower_case\": %t\n}\n", tok.lowerCase)
			created = append(created, atomicfile.File{Name: "tokenizer_config.json", Data: []byte(data), Perm: 0o644})
		}
	case KindBART:
		all := make([]AddedToken, 0, len(tok.baseTerm)+len(added))
		for id, term := range tok.baseTerm {
			all = append(all, AddedToken{Content: term, ID: id})
		}
		all = append(all, added...)
		vocab = append(vocab, atomicfile.File{Name: "vocab.json", Data: orderedJSON(all, false), Perm: 0o644})
		if missing, err := absent(filepath.Join(dir, "merges.txt")); err != nil {
			return nil, err
		} else if missing {
			data, err := regular.ReadFile(filepath.Join(tok.srcDir, "merges.txt"), 0)
			if err != nil {
				return nil, fmt.Errorf("newtokens: WriteVocabFiles: copying merges.txt: %w", err)
			}
			created = append(created, atomicfile.File{Name: "merges.txt", Data: data, Perm: 0o644})
		}
	}
	files := append(created, atomicfile.File{Name: addedTokensFile, Data: orderedJSON(added, true), Perm: 0o644})
	files = append(files, vocab...)
	cfg, err := grownConfig(filepath.Join(dir, "config.json"), tok.vocabSizeLocked())
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		files = append(files, atomicfile.File{Name: "config.json", Data: cfg, Perm: 0o644})
	}
	return files, nil
}

// absent reports whether name does not exist; a name that exists and is
// not a regular file is an error (it would otherwise be skipped or block).
func absent(name string) (bool, error) {
	err := regular.Check(name)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	}
	return false, fmt.Errorf("newtokens: WriteVocabFiles: %w", err)
}

// orderedJSON writes {"token": id, ...} in id order without HTML escaping.
func orderedJSON(list []AddedToken, indent bool) []byte {
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	var b bytes.Buffer
	b.WriteByte('{')
	for i, a := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		if indent {
			b.WriteString("\n  ")
		}
		b.Write(jsonString(a.Content))
		if indent {
			b.WriteString(": ")
		} else {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", a.ID)
	}
	if indent && len(list) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimRight(b.Bytes(), "\n")
}

func readAddedTokens(file string) ([]AddedToken, error) {
	data, err := regular.ReadFile(file, maxConfigJSON)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("newtokens: %w", err)
	}
	var m map[string]int
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("newtokens: %s: %w", file, err)
	}
	out := make([]AddedToken, 0, len(m))
	for s, id := range m {
		out = append(out, AddedToken{Content: s, ID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// grownConfig returns config.json with "vocab_size" raised to size, or nil
// when there is no config.json, it has no vocab_size, or it is not smaller.
// Other keys are kept; the file is re-indented with sorted keys as Hugging
// Face writes it.
func grownConfig(file string, size int) ([]byte, error) {
	data, err := regular.ReadFile(file, maxConfigJSON)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("newtokens: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("newtokens: %s: %w", file, err)
	}
	old, ok := cfg["vocab_size"].(json.Number)
	if !ok {
		return nil, nil
	}
	if n, err := old.Int64(); err != nil || n >= int64(size) {
		return nil, nil // only ever grown: the tokenizer may know fewer ids than the model
	}
	cfg["vocab_size"] = size
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("newtokens: %s: %w", file, err)
	}
	return b.Bytes(), nil
}
