package trainabletokens

// A small, strict safetensors codec.
//
// Choice: our own codec rather than github.com/nlpodyssey/safetensors
// (v0.0.0-20250209183917-bfb01cc25f7c, evaluated). That library reads and
// writes the format correctly and does not panic on the malformed inputs we
// tried, but for loading untrusted adapter files it falls short:
//   - its errors do not name the offending value or what was expected
//     ("invalid header length", "metadata incomplete buffer", "invalid
//     metadata offset for tensor"), and this package promises errors that do;
//   - it decodes the header with encoding/json into a map, so a header that
//     lists the same tensor name twice is silently accepted (last one wins)
//     and invalid UTF-8 in names is silently replaced;
//   - it only parses a whole file held in memory, while we want to check the
//     header against the model before reading (and allocating) any tensor
//     data;
//   - adopting it means a new module requirement in go.mod for ~300 lines of
//     format code.
//
// The format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of UTF-8 JSON starting with '{'
// (possibly padded with trailing spaces) mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} plus an optional
// "__metadata__" object of string values, then the tensor bytes. Offsets are
// relative to the end of the header; sorted by offset, the tensors must tile
// the data section exactly (no gaps, no overlaps, nothing after the last).
// Values are little-endian.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// stMaxHeader is the largest header accepted, safetensors' own limit.
const stMaxHeader = 100_000_000

// stMetadataKey is the reserved header key of the string metadata.
const stMetadataKey = "__metadata__"

// stDTypeBits is the element size in bits of every dtype the format
// defines. Only F32 and F64 hold adapter rows; the others are known so that
// a file using them fails with "wrong dtype" rather than "malformed file".
var stDTypeBits = map[string]uint64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
	"U16": 16, "I16": 16, "F16": 16, "BF16": 16,
	"U32": 32, "I32": 32, "F32": 32,
	"U64": 64, "I64": 64, "F64": 64, "C64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// stTensor is one tensor entry of a validated header.
type stTensor struct {
	name       string
	dtype      string
	shape      []uint64
	begin, end uint64 // relative to the data section
}

// stHeader is a validated safetensors header.
type stHeader struct {
	file      string // for messages
	dataStart int64  // 8 + header length
	dataLen   uint64
	metadata  map[string]string
	tensors   []*stTensor // in data order
	byName    map[string]*stTensor
}

// stErr formats a file error.
func stErr(file, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidAdapterFile, file, fmt.Sprintf(format, args...))
}

// readSTHeader reads and validates the header of a safetensors file of the
// given size. It allocates at most the header length, and only after
// checking it against the file size and the 100 MB cap; tensor data is not
// read.
func readSTHeader(r io.ReaderAt, size int64, file string) (*stHeader, error) {
	if size < 8 {
		return nil, stErr(file, "file is %d bytes; a safetensors file starts with an 8-byte header length", size)
	}
	var lenBuf [8]byte
	if got, err := r.ReadAt(lenBuf[:], 0); got != len(lenBuf) {
		return nil, stErr(file, "reading the header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > stMaxHeader {
		return nil, stErr(file, "header length %d exceeds the limit of %d bytes", n, stMaxHeader)
	}
	if n > uint64(size-8) {
		return nil, stErr(file, "header length %d is larger than the %d bytes that follow it in the file (truncated or not a safetensors file)", n, size-8)
	}
	if n < 2 {
		return nil, stErr(file, "header length %d is too small for a JSON object", n)
	}
	raw := make([]byte, n)
	if got, err := r.ReadAt(raw, 8); got != len(raw) {
		return nil, stErr(file, "reading the %d-byte header: got %d bytes: %v", n, got, err)
	}
	h := &stHeader{file: file, dataStart: int64(8 + n), dataLen: uint64(size) - 8 - n, byName: map[string]*stTensor{}}
	if err := h.parse(raw); err != nil {
		return nil, err
	}
	if err := h.checkLayout(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *stHeader) parse(raw []byte) error {
	if !utf8.Valid(raw) {
		return stErr(h.file, "header is not valid UTF-8")
	}
	if raw[0] != '{' {
		return stErr(h.file, "header starts with %q; expected a JSON object starting with '{'", raw[0])
	}
	body := bytes.TrimRight(raw, " ") // the format pads with spaces only
	members, err := jsonObject(body)
	if err != nil {
		return stErr(h.file, "header JSON: %v", err)
	}
	for _, m := range members {
		if m.key == stMetadataKey {
			if err := h.parseMetadata(m.value); err != nil {
				return err
			}
			continue
		}
		t, err := parseTensorInfo(m.key, m.value)
		if err != nil {
			return stErr(h.file, "tensor %q: %v", m.key, err)
		}
		h.tensors = append(h.tensors, t)
		h.byName[t.name] = t
	}
	return nil
}

func (h *stHeader) parseMetadata(raw json.RawMessage) error {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	members, err := jsonObject(raw)
	if err != nil {
		return stErr(h.file, "%s: %v", stMetadataKey, err)
	}
	h.metadata = make(map[string]string, len(members))
	for _, m := range members {
		v, err := jsonValue(m.value)
		if err != nil {
			return stErr(h.file, "%s[%q]: %v", stMetadataKey, m.key, err)
		}
		s, ok := v.(string)
		if !ok {
			return stErr(h.file, "%s[%q] is %s; metadata values must be strings", stMetadataKey, m.key, short(m.value))
		}
		h.metadata[m.key] = s
	}
	return nil
}

func parseTensorInfo(name string, raw json.RawMessage) (*stTensor, error) {
	members, err := jsonObject(raw)
	if err != nil {
		return nil, err
	}
	t := &stTensor{name: name}
	have := map[string]bool{}
	for _, m := range members {
		v, err := jsonValue(m.value)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", m.key, err)
		}
		switch m.key {
		case "dtype":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("dtype is %s; expected a string such as \"F32\"", short(m.value))
			}
			if _, known := stDTypeBits[s]; !known {
				return nil, fmt.Errorf("unknown dtype %q", s)
			}
			t.dtype = s
		case "shape":
			t.shape, err = naturals(v, -1)
			if err != nil {
				return nil, fmt.Errorf("shape %s: %v", short(m.value), err)
			}
		case "data_offsets":
			offs, err := naturals(v, 2)
			if err != nil {
				return nil, fmt.Errorf("data_offsets %s: %v", short(m.value), err)
			}
			t.begin, t.end = offs[0], offs[1]
		default:
			return nil, fmt.Errorf("unexpected field %q; a tensor entry has exactly dtype, shape and data_offsets", m.key)
		}
		have[m.key] = true
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !have[k] {
			return nil, fmt.Errorf("missing %q", k)
		}
	}
	if t.begin > t.end {
		return nil, fmt.Errorf("data_offsets [%d, %d] end before they begin", t.begin, t.end)
	}
	size, err := stByteSize(t.dtype, t.shape)
	if err != nil {
		return nil, err
	}
	if t.end-t.begin != size {
		return nil, fmt.Errorf("data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d bytes", t.begin, t.end, t.end-t.begin, t.shape, t.dtype, size)
	}
	return t, nil
}

// stByteSize is the byte size of a tensor, with overflow checks.
func stByteSize(dtype string, shape []uint64) (uint64, error) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return 0, fmt.Errorf("shape %v has more elements than fit in 64 bits", shape)
		}
		n = lo
	}
	hi, total := bits.Mul64(n, stDTypeBits[dtype])
	if hi != 0 {
		return 0, fmt.Errorf("shape %v of %s is larger than 2^64 bits", shape, dtype)
	}
	if total%8 != 0 {
		return 0, fmt.Errorf("shape %v of %s is %d bits, not a whole number of bytes", shape, dtype, total)
	}
	return total / 8, nil
}

// checkLayout checks that the tensors tile the data section exactly.
func (h *stHeader) checkLayout() error {
	sort.SliceStable(h.tensors, func(i, j int) bool {
		a, b := h.tensors[i], h.tensors[j]
		return a.begin < b.begin || (a.begin == b.begin && a.end < b.end)
	})
	var pos uint64
	var prev *stTensor
	for _, t := range h.tensors {
		switch {
		case t.begin < pos:
			return stErr(h.file, "tensor %q data_offsets [%d, %d] overlap tensor %q [%d, %d]", t.name, t.begin, t.end, prev.name, prev.begin, prev.end)
		case t.begin > pos:
			return stErr(h.file, "bytes [%d, %d) of the data section belong to no tensor (tensor %q begins at %d); tensors must be contiguous", pos, t.begin, t.name, t.begin)
		}
		if t.end > h.dataLen {
			return stErr(h.file, "tensor %q data_offsets [%d, %d] run past the end of the data section (%d bytes): file truncated?", t.name, t.begin, t.end, h.dataLen)
		}
		pos, prev = t.end, t
	}
	if pos != h.dataLen {
		return stErr(h.file, "the data section has %d bytes but the tensors cover %d; trailing bytes [%d, %d) belong to no tensor", h.dataLen, pos, pos, h.dataLen)
	}
	return nil
}

// read returns the raw bytes of t (validated by checkLayout, so within the file).
func (h *stHeader) read(r io.ReaderAt, t *stTensor) ([]byte, error) {
	buf := make([]byte, t.end-t.begin)
	if len(buf) == 0 {
		return buf, nil
	}
	n, err := r.ReadAt(buf, h.dataStart+int64(t.begin))
	if n == len(buf) {
		return buf, nil
	}
	return nil, stErr(h.file, "reading tensor %q (%d bytes at offset %d): %v", t.name, len(buf), h.dataStart+int64(t.begin), err)
}

// stOut is a tensor to encode.
type stOut struct {
	name  string
	dtype string // "F32" or "F64"
	shape []int
	data  []byte // little-endian
}

// encodeSafetensors lays the tensors out in name order after a header
// holding metadata, padded with spaces to a multiple of 8 bytes as the
// reference implementation does. The output is deterministic.
func encodeSafetensors(metadata map[string]string, tensors []stOut) ([]byte, error) {
	sorted := append([]stOut(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	type info struct {
		DType       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets []uint64 `json:"data_offsets"`
	}
	header := map[string]any{}
	if len(metadata) > 0 {
		header[stMetadataKey] = metadata
	}
	var off uint64
	for i, t := range sorted {
		if t.name == stMetadataKey || (i > 0 && sorted[i-1].name == t.name) {
			return nil, fmt.Errorf("safetensors: invalid or duplicate tensor name %q", t.name)
		}
		size, err := stByteSize(t.dtype, toU64(t.shape))
		if err != nil || size != uint64(len(t.data)) {
			return nil, fmt.Errorf("safetensors: tensor %q: %d data bytes for shape %v of %s", t.name, len(t.data), t.shape, t.dtype)
		}
		header[t.name] = info{t.dtype, t.shape, []uint64{off, off + size}}
		off += size
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(header); err != nil {
		return nil, err
	}
	hj := bytes.TrimRight(buf.Bytes(), "\n")
	if pad := (8 - len(hj)%8) % 8; pad > 0 {
		hj = append(hj, bytes.Repeat([]byte(" "), pad)...)
	}
	out := make([]byte, 0, 8+len(hj)+int(off))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(hj)))
	out = append(out, hj...)
	for _, t := range sorted {
		out = append(out, t.data...)
	}
	return out, nil
}

func toU64(s []int) []uint64 {
	out := make([]uint64, len(s))
	for i, v := range s {
		if v < 0 {
			v = 0
		}
		out[i] = uint64(v)
	}
	return out
}

// jsonMember is one member of a JSON object, in document order.
type jsonMember struct {
	key   string
	value json.RawMessage
}

// jsonObject decodes exactly one JSON object (nothing may follow it) into
// its members, refusing duplicate keys, which encoding/json would silently
// resolve to the last one.
func jsonObject(data []byte) ([]jsonMember, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, found %s", short(data))
	}
	var out []jsonMember
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("expected an object key, found %v", tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("value of %q: %v", key, err)
		}
		out = append(out, jsonMember{key, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object")
	}
	return out, nil
}

// jsonValue decodes one JSON value, numbers as json.Number.
func jsonValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// naturals converts a decoded JSON array of non-negative integers (each
// written as plain digits and fitting in 64 bits); want >= 0 fixes its length.
func naturals(v any, want int) ([]uint64, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected an array of non-negative integers")
	}
	if want >= 0 && len(arr) != want {
		return nil, fmt.Errorf("expected %d elements, found %d", want, len(arr))
	}
	out := make([]uint64, len(arr))
	for i, e := range arr {
		n, ok := e.(json.Number)
		if !ok {
			return nil, fmt.Errorf("element %d is not a number", i)
		}
		u, err := parseNatural(n.String())
		if err != nil {
			return nil, fmt.Errorf("element %d: %v", i, err)
		}
		out[i] = u
	}
	return out, nil
}

// parseNatural parses plain decimal digits without sign, fraction or exponent.
func parseNatural(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a non-negative integer", s)
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s does not fit in 64 bits", s)
	}
	return u, nil
}

// short renders raw JSON for an error message: whitespace collapsed, at
// most 60 bytes, invalid UTF-8 replaced.
func short(raw []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(raw), "\uFFFD")), " ")
	if len(s) > 60 {
		s = strings.ToValidUTF8(s[:57], "") + "..."
	}
	return s
}
