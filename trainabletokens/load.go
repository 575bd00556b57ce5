package trainabletokens

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/regular"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/internal/torchbin"
	"github.com/gopeft/gopeft/registry"
)

// Load injects the adapter stored in dir (PEFT's layout, written by PEFT or
// by Save) into model under the adapter name ("" means "default"), active.
// The adapter's rows are exactly the rows in the file (absolute rows, as in
// PEFT), whatever the model's rows are; tied copies follow them.
//
// Everything is checked before the model changes: on any error the model
// is untouched. Errors about the files wrap ErrInvalidAdapterFile and name
// the offending value and what was expected; file-system errors also wrap
// the os error (errors.Is(err, fs.ErrNotExist) works). A FIFO, socket or
// device in place of either file is an error at once, and a config file
// larger than MaxConfigSize is refused before it is read. A float64 file
// loads into a float32 model only when every value converts exactly
// (otherwise it is an error naming the first value that does not); a
// float32 file always widens exactly into a float64 model. Weights that
// record a digest of a different config (a save interrupted between its
// two files) are refused with an error naming both files.
//
// The model is described, its targets matched and the config validated
// once per call.
func Load(model nn.Model, dir, name string, opts ...LoadOptions) (*Model, error) {
	if name == "" {
		name = DefaultAdapterName
	}
	o, err := oneOption(opts)
	if err != nil {
		return nil, err
	}
	src, err := openSource(dir)
	if err != nil {
		return nil, err
	}
	defer src.close()
	return loadNew(model, src, name, o)
}

// LoadAdapter adds the adapter stored in dir under name, inactive (as
// AddAdapter does); SetActive switches to it. On error nothing changes.
func (m *Model) LoadAdapter(dir, name string, opts ...LoadOptions) error {
	o, err := oneOption(opts)
	if err != nil {
		return err
	}
	src, err := openSource(dir)
	if err != nil {
		return err
	}
	defer src.close()
	return m.loadAdapter(src, name, o)
}

func oneOption(opts []LoadOptions) (LoadOptions, error) {
	switch len(opts) {
	case 0:
		return LoadOptions{}, nil
	case 1:
		return opts[0], nil
	}
	return LoadOptions{}, fmt.Errorf("trainabletokens: pass at most one LoadOptions, got %d", len(opts))
}

// source is an adapter directory's content: the config bytes and the
// safetensors file, read lazily.
type source struct {
	configPath  string
	config      []byte
	weightsPath string
	weights     io.ReaderAt
	size        int64
	closer      io.Closer
}

func (s *source) close() {
	if s.closer != nil {
		s.closer.Close()
	}
}

func openSource(dir string) (*source, error) {
	s := &source{configPath: filepath.Join(dir, ConfigFile), weightsPath: filepath.Join(dir, WeightsFile)}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%w: adapter directory: %w", ErrInvalidAdapterFile, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrInvalidAdapterFile, dir)
	}
	cfg, err := regular.ReadFile(s.configPath, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAdapterFile, err)
	}
	s.config = cfg
	f, fi, err := regular.Open(s.weightsPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, perr := os.Stat(filepath.Join(dir, PickleWeightsFile)); perr == nil {
				return s.openPickle(filepath.Join(dir, PickleWeightsFile))
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidAdapterFile, err)
	}
	s.weights, s.size, s.closer = f, fi.Size(), f
	return s, nil
}

// openPickle reads PEFT's adapter_model.bin (torch.save's zip format) with
// internal/torchbin, which interprets only tensor reconstruction, and
// presents its tensors as an in-memory safetensors file, so every check of
// the safetensors path applies.
func (s *source) openPickle(path string) (*source, error) {
	f, fi, err := regular.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAdapterFile, err)
	}
	defer f.Close()
	ts, err := torchbin.Read(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w; convert it to safetensors in Python: "+
			"safetensors.torch.save_file(torch.load(%q, weights_only=True), \"adapter_model.safetensors\", metadata={\"format\": \"pt\"})",
			ErrInvalidAdapterFile, path, err, PickleWeightsFile)
	}
	tensors := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		tensors[i] = safetensors.Tensor{Name: t.Name, DType: safetensors.DType(t.DType), Shape: t.Shape, Data: t.Data}
	}
	data, err := safetensors.Encode(map[string]string{"format": "pt"}, tensors)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAdapterFile, path, err)
	}
	s.weightsPath, s.weights, s.size = path, bytes.NewReader(data), int64(len(data))
	return s, nil
}

// loadNew builds the whole plan against model, then injects.
func loadNew(model nn.Model, src *source, name string, o LoadOptions) (*Model, error) {
	layout, err := registry.Describe(model)
	if err != nil {
		return nil, err
	}
	if err := checkNotInjected(layout); err != nil {
		return nil, err
	}
	p, err := plan(layout, src, o)
	if err != nil {
		return nil, err
	}
	m, err := inject(model, layout, name, p.cfg, p.tables)
	if err != nil {
		return nil, err // plan checked everything New checks; not expected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err = p.fill(m.adapters[name])
	if err == nil {
		err = m.apply()
	}
	if err != nil { // not expected either; give the model back as it was
		m.merged = nil
		m.unload()
		return nil, err
	}
	for _, hp := range p.heads {
		hp.apply()
	}
	return m, nil
}

func (m *Model) loadAdapter(src *source, name string, o LoadOptions) error {
	if err := m.lockWrite("LoadAdapter"); err != nil {
		return err
	}
	defer m.unlockWrite()
	if err := m.checkNewName(name); err != nil {
		return err
	}
	p, err := plan(m.layout, src, o)
	if err != nil {
		return err
	}
	a, err := m.buildAdapter(name, p.cfg, p.tables)
	if err != nil {
		return err
	}
	if err := p.fill(a); err != nil {
		return err
	}
	for _, hp := range p.heads {
		hp.apply()
	}
	m.adapters[name] = a
	m.names = append(m.names, name)
	return m.apply()
}
