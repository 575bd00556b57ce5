package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"unicode/utf8"

	"github.com/gopeft/gopeft/internal/strictjson"
)

// MaxHeader is the largest header accepted, safetensors' own limit.
const MaxHeader = 100_000_000

// MetadataKey is the reserved header key of the string metadata.
const MetadataKey = "__metadata__"

// DType is a tensor element type as the format spells it ("F32", ...).
type DType string

// The dtypes adapter rows use.
const (
	F32 DType = "F32"
	F64 DType = "F64"
)

// dtypeBits is the element size in bits of every dtype the format defines.
// Only F32 and F64 have typed access; the others are known so that a file
// using them fails with "wrong dtype" in the caller rather than "malformed
// file" here.
var dtypeBits = map[DType]uint64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
	"U16": 16, "I16": 16, "F16": 16, "BF16": 16,
	"U32": 32, "I32": 32, "F32": 32,
	"U64": 64, "I64": 64, "F64": 64, "C64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// Error is a malformed or unreadable safetensors file.
type Error struct {
	File string // the name given to ReadHeader
	Msg  string // what is wrong, naming the value and what was expected
	Err  error  // the underlying I/O error, if any
}

func (e *Error) Error() string { return e.File + ": " + e.Msg }

// Unwrap returns the underlying I/O error, if any.
func (e *Error) Unwrap() error { return e.Err }

func errorf(file string, cause error, format string, args ...any) error {
	return &Error{File: file, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// TensorInfo is one tensor entry of a validated header.
type TensorInfo struct {
	Name       string
	DType      DType
	Shape      []uint64
	Begin, End uint64 // byte offsets relative to the data section
}

// Elements is the number of elements of the tensor.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d // cannot overflow: checked by ReadHeader
	}
	return n
}

// Header is a validated safetensors header.
type Header struct {
	File      string // for messages
	DataStart int64  // 8 + header length
	DataLen   uint64
	Metadata  map[string]string // nil when the file has none
	Tensors   []*TensorInfo     // in data order
	byName    map[string]*TensorInfo
}

// Tensor returns the named tensor, or nil.
func (h *Header) Tensor(name string) *TensorInfo { return h.byName[name] }

// ReadHeader reads and validates the header of a safetensors file of the
// given size; file names it in errors. It allocates at most the header
// length, and only after checking it against the file size and MaxHeader;
// tensor data is not read. Every error is an *Error.
func ReadHeader(r io.ReaderAt, size int64, file string) (*Header, error) {
	if size < 8 {
		return nil, errorf(file, nil, "file is %d bytes; a safetensors file starts with an 8-byte header length", size)
	}
	var lenBuf [8]byte
	if got, err := r.ReadAt(lenBuf[:], 0); got != len(lenBuf) {
		return nil, errorf(file, err, "reading the header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeader {
		return nil, errorf(file, nil, "header length %d exceeds the limit of %d bytes", n, MaxHeader)
	}
	if n > uint64(size-8) {
		return nil, errorf(file, nil, "header length %d is larger than the %d bytes that follow it in the file (truncated or not a safetensors file)", n, size-8)
	}
	if n < 2 {
		return nil, errorf(file, nil, "header length %d is too small for a JSON object", n)
	}
	raw := make([]byte, n)
	if got, err := r.ReadAt(raw, 8); got != len(raw) {
		return nil, errorf(file, err, "reading the %d-byte header: got %d bytes: %v", n, got, err)
	}
	h := &Header{File: file, DataStart: int64(8 + n), DataLen: uint64(size) - 8 - n, byName: map[string]*TensorInfo{}}
	if err := h.parse(raw); err != nil {
		return nil, err
	}
	if err := h.checkLayout(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) parse(raw []byte) error {
	if !utf8.Valid(raw) {
		return errorf(h.File, nil, "header is not valid UTF-8")
	}
	if raw[0] != '{' {
		return errorf(h.File, nil, "header starts with %q; expected a JSON object starting with '{'", raw[0])
	}
	body := bytes.TrimRight(raw, " ") // the format pads with spaces only
	members, err := strictjson.Object(body)
	if err != nil {
		return errorf(h.File, nil, "header JSON: %v", err)
	}
	for _, m := range members {
		if m.Key == MetadataKey {
			if err := h.parseMetadata(m.Value); err != nil {
				return err
			}
			continue
		}
		t, err := parseTensorInfo(m.Key, m.Value)
		if err != nil {
			return errorf(h.File, nil, "tensor %q: %v", m.Key, err)
		}
		h.Tensors = append(h.Tensors, t)
		h.byName[t.Name] = t
	}
	return nil
}

func (h *Header) parseMetadata(raw json.RawMessage) error {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	members, err := strictjson.Object(raw)
	if err != nil {
		return errorf(h.File, nil, "%s: %v", MetadataKey, err)
	}
	h.Metadata = make(map[string]string, len(members))
	for _, m := range members {
		v, err := strictjson.Value(m.Value)
		if err != nil {
			return errorf(h.File, nil, "%s[%q]: %v", MetadataKey, m.Key, err)
		}
		s, ok := v.(string)
		if !ok {
			return errorf(h.File, nil, "%s[%q] is %s; metadata values must be strings", MetadataKey, m.Key, strictjson.Short(m.Value))
		}
		h.Metadata[m.Key] = s
	}
	return nil
}

func parseTensorInfo(name string, raw json.RawMessage) (*TensorInfo, error) {
	members, err := strictjson.Object(raw)
	if err != nil {
		return nil, err
	}
	t := &TensorInfo{Name: name}
	have := map[string]bool{}
	for _, m := range members {
		v, err := strictjson.Value(m.Value)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", m.Key, err)
		}
		switch m.Key {
		case "dtype":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("dtype is %s; expected a string such as \"F32\"", strictjson.Short(m.Value))
			}
			if _, known := dtypeBits[DType(s)]; !known {
				return nil, fmt.Errorf("unknown dtype %q", s)
			}
			t.DType = DType(s)
		case "shape":
			t.Shape, err = strictjson.Naturals(v, -1)
			if err != nil {
				return nil, fmt.Errorf("shape %s: %v", strictjson.Short(m.Value), err)
			}
		case "data_offsets":
			offs, err := strictjson.Naturals(v, 2)
			if err != nil {
				return nil, fmt.Errorf("data_offsets %s: %v", strictjson.Short(m.Value), err)
			}
			t.Begin, t.End = offs[0], offs[1]
		default:
			return nil, fmt.Errorf("unexpected field %q; a tensor entry has exactly dtype, shape and data_offsets", m.Key)
		}
		have[m.Key] = true
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !have[k] {
			return nil, fmt.Errorf("missing %q", k)
		}
	}
	if t.Begin > t.End {
		return nil, fmt.Errorf("data_offsets [%d, %d] end before they begin", t.Begin, t.End)
	}
	size, err := ByteSize(t.DType, t.Shape)
	if err != nil {
		return nil, err
	}
	if t.End-t.Begin != size {
		return nil, fmt.Errorf("data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d bytes", t.Begin, t.End, t.End-t.Begin, t.Shape, t.DType, size)
	}
	return t, nil
}

// ByteSize is the byte size of a tensor, with overflow checks.
func ByteSize(dtype DType, shape []uint64) (uint64, error) {
	eb, ok := dtypeBits[dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return 0, fmt.Errorf("shape %v has more elements than fit in 64 bits", shape)
		}
		n = lo
	}
	hi, total := bits.Mul64(n, eb)
	if hi != 0 {
		return 0, fmt.Errorf("shape %v of %s is larger than 2^64 bits", shape, dtype)
	}
	if total%8 != 0 {
		return 0, fmt.Errorf("shape %v of %s is %d bits, not a whole number of bytes", shape, dtype, total)
	}
	return total / 8, nil
}

// checkLayout checks that the tensors tile the data section exactly.
func (h *Header) checkLayout() error {
	sort.SliceStable(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		return a.Begin < b.Begin || (a.Begin == b.Begin && a.End < b.End)
	})
	var pos uint64
	var prev *TensorInfo
	for _, t := range h.Tensors {
		switch {
		case t.Begin < pos:
			return errorf(h.File, nil, "tensor %q data_offsets [%d, %d] overlap tensor %q [%d, %d]", t.Name, t.Begin, t.End, prev.Name, prev.Begin, prev.End)
		case t.Begin > pos:
			return errorf(h.File, nil, "bytes [%d, %d) of the data section belong to no tensor (tensor %q begins at %d); tensors must be contiguous", pos, t.Begin, t.Name, t.Begin)
		}
		if t.End > h.DataLen {
			return errorf(h.File, nil, "tensor %q data_offsets [%d, %d] run past the end of the data section (%d bytes): file truncated?", t.Name, t.Begin, t.End, h.DataLen)
		}
		pos, prev = t.End, t
	}
	if pos != h.DataLen {
		return errorf(h.File, nil, "the data section has %d bytes but the tensors cover %d; trailing bytes [%d, %d) belong to no tensor", h.DataLen, pos, pos, h.DataLen)
	}
	return nil
}

// Raw returns the bytes of t (validated by ReadHeader, so within the file).
func (h *Header) Raw(r io.ReaderAt, t *TensorInfo) ([]byte, error) {
	buf := make([]byte, t.End-t.Begin)
	if len(buf) == 0 {
		return buf, nil
	}
	n, err := r.ReadAt(buf, h.DataStart+int64(t.Begin))
	if n == len(buf) {
		return buf, nil
	}
	return nil, errorf(h.File, err, "reading tensor %q (%d bytes at offset %d): %v", t.Name, len(buf), h.DataStart+int64(t.Begin), err)
}

// At decodes element e of F32 or F64 data (as returned by Raw) as a
// float64; F32 widens exactly.
func At(data []byte, dtype DType, e int) float64 {
	if dtype == F64 {
		return math.Float64frombits(binary.LittleEndian.Uint64(data[e*8:]))
	}
	return float64(math.Float32frombits(binary.LittleEndian.Uint32(data[e*4:])))
}

// Float32s decodes F32 data bit for bit (NaN payloads kept).
func Float32s(data []byte) []float32 {
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[i*4:]))
	}
	return out
}

// Float64s decodes F64 data bit for bit.
func Float64s(data []byte) []float64 {
	out := make([]float64, len(data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[i*8:]))
	}
	return out
}

// Tensor is a tensor to encode.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte // little-endian
}

// AppendFloat32s appends vals to b as little-endian F32.
func AppendFloat32s(b []byte, vals []float32) []byte {
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// AppendFloat64s appends vals to b as little-endian F64.
func AppendFloat64s(b []byte, vals []float64) []byte {
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// Encode lays the tensors out in name order after a header holding
// metadata, padded with spaces to a multiple of 8 bytes as the reference
// implementation does. The output is deterministic.
func Encode(metadata map[string]string, tensors []Tensor) ([]byte, error) {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	type info struct {
		DType       DType    `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets []uint64 `json:"data_offsets"`
	}
	header := map[string]any{}
	if len(metadata) > 0 {
		header[MetadataKey] = metadata
	}
	var off uint64
	for i, t := range sorted {
		if t.Name == MetadataKey || (i > 0 && sorted[i-1].Name == t.Name) {
			return nil, fmt.Errorf("safetensors: invalid or duplicate tensor name %q", t.Name)
		}
		shape := make([]uint64, len(t.Shape))
		for j, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			shape[j] = uint64(d)
		}
		size, err := ByteSize(t.DType, shape)
		if err != nil || size != uint64(len(t.Data)) {
			return nil, fmt.Errorf("safetensors: tensor %q: %d data bytes for shape %v of %s", t.Name, len(t.Data), t.Shape, t.DType)
		}
		header[t.Name] = info{t.DType, t.Shape, []uint64{off, off + size}}
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
		out = append(out, t.Data...)
	}
	return out, nil
}
