// Package safetensors is a small, strict codec for Hugging Face's
// safetensors format: it checks a header completely (against the file size,
// with overflow-checked sizes, refusing duplicate names, gaps and overlaps)
// before a byte of tensor data is read or allocated, gives typed access to
// F32/F64 tensors, and encodes deterministic files.
//
// It owns the format only. It must not know what the tensors mean (PEFT's
// key names, adapters, models): its errors (*Error) name the file and the
// offending value, and callers add what the file was for.
//
// Choice: our own codec rather than github.com/nlpodyssey/safetensors
// (v0.0.0-20250209183917-bfb01cc25f7c, evaluated). That library reads and
// writes the format correctly and does not panic on the malformed inputs we
// tried, but for loading untrusted adapter files it falls short: its errors
// do not name the offending value or what was expected ("invalid header
// length", "metadata incomplete buffer"); it decodes the header with
// encoding/json into a map, so a header listing the same tensor twice is
// silently accepted (last one wins) and invalid UTF-8 in names is silently
// replaced; and it only parses a whole file held in memory, while we check
// the header against the model before reading any tensor data.
//
// The format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of UTF-8 JSON starting with '{'
// (possibly padded with trailing spaces) mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} plus an optional
// "__metadata__" object of string values, then the tensor bytes. Offsets are
// relative to the end of the header; sorted by offset, the tensors must tile
// the data section exactly (no gaps, no overlaps, nothing after the last).
// Values are little-endian.
package safetensors
