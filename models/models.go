package models

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/regular"
)

// SpagoFile is the file name of a converted model in a model directory.
const SpagoFile = "spago_model.bin"

// Convert converts the Hugging Face model in dir (config.json +
// pytorch_model.bin + tokenizer files) into dir/spago_model.bin with
// cybertron's converter, as float32. An existing spago_model.bin is kept
// unless overwrite is set.
//
// cybertron's converter prints a progress line on stdout and a report
// through zerolog's global logger. Convert keeps both out of the caller's
// output without touching process-wide state: the converter runs in a
// child process (see convert.go). Where no child can be started (an
// interpreter such as gophernotes), it runs in-process and its output shows.
func Convert(dir string, overwrite bool) error {
	if err := regular.Check(filepath.Join(dir, "config.json")); err != nil {
		return fmt.Errorf("models: %s is not a model directory: %w", dir, err)
	}
	if err := regular.Check(filepath.Join(dir, SpagoFile)); err == nil && !overwrite {
		why, err := stale(dir)
		if err != nil {
			return err
		}
		if why == "" {
			return nil
		}
		// Rebuilt below: the converted file no longer matches its source.
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("models: %w", err)
	}
	if err := regular.Check(filepath.Join(dir, "pytorch_model.bin")); err != nil {
		return fmt.Errorf("models: nothing to convert in %s: %w", dir, err)
	}
	if mt, err := modelType(dir); err == nil && mt == "electra" {
		// cybertron's converter panics on ELECTRA heads
		if err := ConvertELECTRA(dir, true); err != nil {
			return err
		}
		return recordSource(dir)
	}
	if cfg, err := modelConfig(dir); err == nil {
		mt, _ := cfg["model_type"].(string)
		if err := checkFamilyFlags(dir, mt, cfg); err != nil { // Marian, Pegasus
			return err
		}
	}
	if err := convertQuietly(dir); err != nil {
		return fmt.Errorf("models: converting %s: %w", dir, err)
	}
	return recordSource(dir)
}

// LoadBERT loads dir/spago_model.bin as a BERT masked-language model,
// converting a Hugging Face directory first when needed, and gives it
// Hugging Face's function (HFFunction).
func LoadBERT(dir string) (*bert.ModelForMaskedLM, error) {
	if err := checkConfig(dir, "BERT"); err != nil {
		return nil, err
	}
	if err := Convert(dir, false); err != nil {
		return nil, err
	}
	m, err := loadSpago[*bert.ModelForMaskedLM](filepath.Join(dir, SpagoFile))
	if err != nil {
		return nil, fmt.Errorf("models: loading %s as BERT for masked LM: %w", dir, err)
	}
	if err := HFFunction(m); err != nil {
		return nil, fmt.Errorf("models: loading %s: %w", dir, err)
	}
	return m, nil
}

// LoadBART loads dir/spago_model.bin as a BART model for conditional
// generation (converting first when needed) and points the encoder's and
// decoder's shared embeddings at the model's own table, as cybertron's task
// loaders do (gob does not keep the shared pointer), and gives it Hugging
// Face's function (HFFunction).
func LoadBART(dir string) (*bart.ModelForConditionalGeneration, error) {
	if err := checkConfig(dir, "BART"); err != nil {
		return nil, err
	}
	if err := Convert(dir, false); err != nil {
		return nil, err
	}
	m, err := loadSpago[*bart.ModelForConditionalGeneration](filepath.Join(dir, SpagoFile))
	if err != nil {
		return nil, fmt.Errorf("models: loading %s as BART for conditional generation: %w", dir, err)
	}
	RewireBART(m)
	if err := HFFunction(m); err != nil {
		return nil, fmt.Errorf("models: loading %s: %w", dir, err)
	}
	return m, nil
}

// RewireBART re-links the encoder's and decoder's embedding.Shared wrappers
// to m's table.
func RewireBART(m *bart.ModelForConditionalGeneration) {
	m.Bart.Encoder.Embeddings.SharedEmbeddings = embedding.Shared{Model: m.Bart.Embeddings}
	m.Bart.Decoder.Embeddings.SharedEmbeddings = embedding.Shared{Model: m.Bart.Embeddings}
}

// Tiny writes the embedded tiny model name ("bert-tiny" or "bart-tiny")
// into workDir/name, converts it, and returns the directory.
//
// It writes only its own files: the embedded Hugging Face files (see
// gopeft.WriteTinyModel), spago_model.bin and its SourceFile, each atomically. The
// conversion runs in a private temporary directory inside workDir, removed
// afterwards, and the converted file is then written into place (left as
// it is when it already holds the same bytes). Adapters, vocabularies and
// other files saved beside the model are never touched.
func Tiny(name, workDir string) (string, error) {
	dir, err := gopeft.WriteTinyModel(name, workDir)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(workDir, "."+name+".convert-")
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	defer os.RemoveAll(tmp) // our own scratch directory
	scratch, err := gopeft.WriteTinyModel(name, tmp)
	if err != nil {
		return "", err
	}
	if err := Convert(scratch, true); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(scratch, SpagoFile))
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	dst := filepath.Join(dir, SpagoFile)
	if old, err := regular.ReadFile(dst, int64(len(data))); err != nil || !bytes.Equal(old, data) {
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return "", fmt.Errorf("models: %w", err)
		}
	}
	return dir, recordSource(dir)
}

// TinyBERT returns the embedded tiny BERT masked LM, converted in workDir.
func TinyBERT(workDir string) (*bert.ModelForMaskedLM, string, error) {
	dir, err := Tiny("bert-tiny", workDir)
	if err != nil {
		return nil, "", err
	}
	m, err := LoadBERT(dir)
	return m, dir, err
}

// TinyBART returns the embedded tiny BART, converted in workDir.
func TinyBART(workDir string) (*bart.ModelForConditionalGeneration, string, error) {
	dir, err := Tiny("bart-tiny", workDir)
	if err != nil {
		return nil, "", err
	}
	m, err := LoadBART(dir)
	return m, dir, err
}

// loadSpago decodes a spago model file as nn.LoadFromFile does, but opens it
// with regular.Open: a FIFO or other special file is an error at once.
func loadSpago[T any](file string) (T, error) {
	var zero T
	f, _, err := regular.Open(file)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	return nn.Load[T](f)
}

// Save writes model to dir/spago_model.bin atomically (a temporary file in
// dir, fsynced, renamed, then dir fsynced), so a crash leaves the old file
// or the new one and an error leaves no temporary file. Nothing else in dir
// is touched; a spago_model.bin that is not a regular file is refused.
func Save(model nn.Model, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	err := atomicfile.WriteFunc(filepath.Join(dir, SpagoFile), 0o644, func(w io.Writer) error { return nn.Dump(model, w) })
	if err != nil {
		return fmt.Errorf("models: saving %s: %w", dir, err)
	}
	return nil
}
