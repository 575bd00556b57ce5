package newtokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
// Each file is written to a temporary file in dir and renamed over the old
// one, so a reader sees either the old or the new file, never a partial one.
// The model itself (spago_model.bin) is saved separately, e.g. with
// nn.DumpToFile.
func WriteVocabFiles(dir string, tok *Tokenizer) error {
	if tok == nil {
		return fmt.Errorf("newtokens: WriteVocabFiles: tokenizer is nil")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("newtokens: WriteVocabFiles: %w", err)
	}
	tok.mu.RLock()
	defer tok.mu.RUnlock()

	added := append([]AddedToken(nil), tok.added...)
	sort.Slice(added, func(i, j int) bool { return added[i].ID < added[j].ID })

	switch tok.kind {
	case KindBERT:
		var b bytes.Buffer
		for _, term := range tok.vocab.Items() {
			b.WriteString(term)
			b.WriteByte('\n')
		}
		if err := writeAtomic(filepath.Join(dir, "vocab.txt"), b.Bytes()); err != nil {
			return err
		}
		// cybertron's BERT task loaders require tokenizer_config.json.
		if cfg := filepath.Join(dir, "tokenizer_config.json"); !fileExists(cfg) {
			data := fmt.Sprintf("{\n  \"do_lower_case\": %t\n}\n", tok.lowerCase)
			if err := writeAtomic(cfg, []byte(data)); err != nil {
				return err
			}
		}
	case KindBART:
		all := make([]AddedToken, 0, len(tok.baseTerm)+len(added))
		for id, term := range tok.baseTerm {
			all = append(all, AddedToken{Content: term, ID: id})
		}
		all = append(all, added...)
		if err := writeAtomic(filepath.Join(dir, "vocab.json"), orderedJSON(all, false)); err != nil {
			return err
		}
		merges := filepath.Join(dir, "merges.txt")
		if !fileExists(merges) {
			data, err := os.ReadFile(filepath.Join(tok.srcDir, "merges.txt"))
			if err != nil {
				return fmt.Errorf("newtokens: WriteVocabFiles: copying merges.txt: %w", err)
			}
			if err := writeAtomic(merges, data); err != nil {
				return err
			}
		}
	}
	if err := writeAtomic(filepath.Join(dir, addedTokensFile), orderedJSON(added, true)); err != nil {
		return err
	}
	return updateConfigVocabSize(filepath.Join(dir, "config.json"), tok.vocabSizeLocked())
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
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
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

func updateConfigVocabSize(file string, size int) error {
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("newtokens: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("newtokens: %s: %w", file, err)
	}
	old, ok := cfg["vocab_size"].(json.Number)
	if !ok {
		return nil
	}
	if n, err := old.Int64(); err != nil || n >= int64(size) {
		return nil // only ever grown: the tokenizer may know fewer ids than the model
	}
	cfg["vocab_size"] = size
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("newtokens: %s: %w", file, err)
	}
	return writeAtomic(file, b.Bytes())
}

// writeAtomic writes data to name through a temporary file in the same
// directory, synced and renamed over name.
func writeAtomic(name string, data []byte) (err error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp-*")
	if err != nil {
		return fmt.Errorf("newtokens: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("newtokens: writing %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("newtokens: writing %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("newtokens: writing %s: %w", name, err)
	}
	mode := os.FileMode(0o644)
	if st, statErr := os.Stat(name); statErr == nil {
		mode = st.Mode().Perm()
	}
	if err = os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("newtokens: %w", err)
	}
	if err = os.Rename(tmp, name); err != nil {
		return fmt.Errorf("newtokens: %w", err)
	}
	return nil
}
