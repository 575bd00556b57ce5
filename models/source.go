package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/regular"
)

// SourceFile records, next to spago_model.bin, which pytorch_model.bin it
// was converted from (size, modification time, SHA-256), so that a
// converted file older than, or built from another, pytorch_model.bin is
// rebuilt instead of silently used.
const SourceFile = "spago_model.source.json"

const pytorchFile = "pytorch_model.bin"

type sourceRecord struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_unix_nano"`
	SHA256  string `json:"sha256"`
}

func fileSHA256(path string) (string, error) {
	f, _, err := regular.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordSource writes dir's SourceFile for its current pytorch_model.bin.
func recordSource(dir string) error {
	src := filepath.Join(dir, pytorchFile)
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	sum, err := fileSHA256(src)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	data, _ := json.MarshalIndent(sourceRecord{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), SHA256: sum}, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(dir, SourceFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	return nil
}

// stale reports why dir's spago_model.bin must be rebuilt from its
// pytorch_model.bin ("" when it may be used): the recorded source differs
// (by SHA-256, checked when size or modification time changed), or, with
// no record, the converted file is older than the source.
func stale(dir string) (string, error) {
	src := filepath.Join(dir, pytorchFile)
	sfi, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // a cybertron directory: nothing to compare with
	}
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	data, err := regular.ReadFile(filepath.Join(dir, SourceFile), 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		bfi, err := os.Stat(filepath.Join(dir, SpagoFile))
		if err != nil {
			return "", fmt.Errorf("models: %w", err)
		}
		if bfi.ModTime().Before(sfi.ModTime()) {
			return fmt.Sprintf("%s is older than %s", SpagoFile, pytorchFile), nil
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	var rec sourceRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.SHA256 == "" {
		return fmt.Sprintf("%s is unreadable", SourceFile), nil
	}
	if rec.Size == sfi.Size() && rec.ModTime == sfi.ModTime().UnixNano() {
		return "", nil
	}
	sum, err := fileSHA256(src)
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	if sum != rec.SHA256 {
		return fmt.Sprintf("%s was built from another %s (SHA-256 %.12s…, now %.12s…)", SpagoFile, pytorchFile, rec.SHA256, sum), nil
	}
	return "", nil
}
