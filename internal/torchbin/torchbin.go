// Package torchbin reads a flat state dict of tensors from a PyTorch zip
// checkpoint (torch.save's default format since torch 1.6, e.g. PEFT's
// adapter_model.bin) without running any pickle code.
//
// A pickle is a program; this package interprets only the opcodes a
// torch.save of a dict of tensors uses, and only three kinds of globals:
// collections.OrderedDict (an empty one, as the dict itself or as a
// tensor's backward hooks), torch._utils._rebuild_tensor_v2, and the typed
// storage classes (torch.FloatStorage, ...). Any other global, opcode or
// shape is an error. Memory is bounded by the file: data.pkl is read up to
// MaxPickle bytes, each storage must be a stored (uncompressed) zip entry
// whose size equals the element count the pickle declares times the element
// size, and every tensor must fit its storage. Nothing is allocated from a
// declared size before it has been checked against the file.
package torchbin

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// MaxPickle bounds data.pkl (a state dict of a few thousand tensors needs
// well under a megabyte).
const MaxPickle = 16 << 20

// Tensor is one tensor of the state dict: contiguous little-endian data.
type Tensor struct {
	Name  string
	DType string // "F32", "F64", "F16" or "BF16"
	Shape []int
	Data  []byte
}

// ErrFormat wraps every error about the file's content.
var ErrFormat = errors.New("torchbin: not a readable PyTorch state dict")

func errf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

var storageTypes = map[string]struct {
	dtype string
	size  int
}{
	"FloatStorage":    {"F32", 4},
	"DoubleStorage":   {"F64", 8},
	"HalfStorage":     {"F16", 2},
	"BFloat16Storage": {"BF16", 2},
}

// Read parses the zip checkpoint r (size bytes) and returns its tensors in
// name order.
func Read(r io.ReaderAt, size int64) ([]Tensor, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, errf("not a zip archive (%v); old-style (pre-1.6) torch.save files are not supported", err)
	}
	files := map[string]*zip.File{}
	var pkl *zip.File
	for _, f := range zr.File {
		if files[f.Name] != nil {
			return nil, errf("zip entry %q appears twice", f.Name)
		}
		files[f.Name] = f
		if strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1 {
			if pkl != nil {
				return nil, errf("two data.pkl entries")
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, errf("no <archive>/data.pkl entry")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if pkl.UncompressedSize64 > MaxPickle {
		return nil, errf("data.pkl is %d bytes, more than %d", pkl.UncompressedSize64, MaxPickle)
	}
	rc, err := pkl.Open()
	if err != nil {
		return nil, errf("opening data.pkl: %v", err)
	}
	prog, err := io.ReadAll(io.LimitReader(rc, MaxPickle+1))
	rc.Close()
	if err != nil {
		return nil, errf("reading data.pkl: %v", err)
	}
	if len(prog) > MaxPickle {
		return nil, errf("data.pkl is larger than %d bytes", MaxPickle)
	}
	root, err := run(prog)
	if err != nil {
		return nil, err
	}
	d, ok := root.(*dict)
	if !ok {
		return nil, errf("the pickle holds a %s, not a dict of tensors", kind(root))
	}
	var out []Tensor
	seen := map[string]bool{}
	budget := size // tensors may share a storage: never read more than the file holds
	for _, kv := range d.items {
		name, ok := kv[0].(string)
		if !ok {
			return nil, errf("a state dict key is a %s, not a string", kind(kv[0]))
		}
		if seen[name] {
			return nil, errf("key %q appears twice", name)
		}
		seen[name] = true
		rt, ok := kv[1].(*rebuilt)
		if !ok {
			return nil, errf("%q is a %s, not a tensor", name, kind(kv[1]))
		}
		t, err := rt.tensor(name, files, prefix, &budget)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Values the interpreter builds.
type (
	global  struct{ module, name string }
	mark    struct{}
	tuple   []any
	dict    struct{ items [][2]any }
	storage struct {
		dtype string
		size  int
		key   string
		numel int
	}
	rebuilt struct {
		st     *storage
		offset int
		shape  []int
		stride []int
	}
)

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case string:
		return "string"
	case int:
		return "integer"
	case bool:
		return "bool"
	case float64:
		return "float"
	case tuple:
		return "tuple"
	case *dict:
		return "dict"
	case *rebuilt:
		return "tensor"
	case global:
		return "global"
	case *storage:
		return "storage"
	}
	return fmt.Sprintf("%T", v)
}

const maxStack = 1 << 16

// run interprets prog and returns the value STOP leaves.
func run(prog []byte) (any, error) {
	var stack []any
	memo := map[uint32]any{}
	pos := 0
	need := func(n int) ([]byte, error) {
		if n < 0 || pos+n > len(prog) || pos+n < pos {
			return nil, errf("data.pkl ends inside an opcode argument at byte %d", pos)
		}
		b := prog[pos : pos+n]
		pos += n
		return b, nil
	}
	// size reads the argument of an opcode pair with a short (one byte)
	// and a long (four bytes, little endian) form.
	size := func(short bool) (uint32, error) {
		if short {
			b, err := need(1)
			if err != nil {
				return 0, err
			}
			return uint32(b[0]), nil
		}
		b, err := need(4)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b), nil
	}
	pop := func() (any, error) {
		if len(stack) == 0 {
			return nil, errf("pickle stack underflow at byte %d", pos)
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, nil
	}
	popMark := func() ([]any, error) {
		for i := len(stack) - 1; i >= 0; i-- {
			if _, ok := stack[i].(mark); ok {
				items := append([]any(nil), stack[i+1:]...)
				stack = stack[:i]
				return items, nil
			}
		}
		return nil, errf("no MARK on the pickle stack at byte %d", pos)
	}
	push := func(v any) error {
		if len(stack) >= maxStack {
			return errf("pickle stack deeper than %d", maxStack)
		}
		stack = append(stack, v)
		return nil
	}
	for {
		if pos >= len(prog) {
			return nil, errf("data.pkl ends without STOP")
		}
		op := prog[pos]
		pos++
		var err error
		switch op {
		case 0x80: // PROTO
			var b []byte
			if b, err = need(1); err == nil && b[0] > 5 {
				err = errf("pickle protocol %d", b[0])
			}
		case '.': // STOP
			v, err := pop()
			if err != nil {
				return nil, err
			}
			if len(stack) != 0 {
				return nil, errf("%d values left on the pickle stack at STOP", len(stack))
			}
			return v, nil
		case '}': // EMPTY_DICT
			err = push(&dict{})
		case ')': // EMPTY_TUPLE
			err = push(tuple{})
		case '(': // MARK
			err = push(mark{})
		case 'N':
			err = push(nil)
		case 0x88, 0x89: // NEWTRUE, NEWFALSE
			err = push(op == 0x88)
		case 'q', 'r': // BINPUT, LONG_BINPUT
			var idx uint32
			if idx, err = size(op == 'q'); err == nil {
				if len(stack) == 0 {
					err = errf("BINPUT on an empty stack")
				} else if len(memo) >= maxStack && memo[idx] == nil {
					err = errf("more than %d memo entries", maxStack)
				} else {
					memo[idx] = stack[len(stack)-1]
				}
			}
		case 'h', 'j': // BINGET, LONG_BINGET
			var idx uint32
			if idx, err = size(op == 'h'); err == nil {
				v, ok := memo[idx]
				if !ok {
					err = errf("memo entry %d is not set", idx)
				} else {
					err = push(v)
				}
			}
		case 'X', 0x8c: // BINUNICODE, SHORT_BINUNICODE
			var b []byte
			var n uint32
			if n, err = size(op == 0x8c); err == nil {
				if b, err = need(int(n)); err == nil {
					err = push(string(b))
				}
			}
		case 'K': // BININT1
			var b []byte
			if b, err = need(1); err == nil {
				err = push(int(b[0]))
			}
		case 'M': // BININT2
			var b []byte
			if b, err = need(2); err == nil {
				err = push(int(binary.LittleEndian.Uint16(b)))
			}
		case 'J': // BININT
			var b []byte
			if b, err = need(4); err == nil {
				err = push(int(int32(binary.LittleEndian.Uint32(b))))
			}
		case 0x8a: // LONG1
			var b []byte
			if b, err = need(1); err == nil {
				n := int(b[0])
				if n > 8 {
					err = errf("integer of %d bytes", n)
				} else if b, err = need(n); err == nil {
					var u uint64
					for i := n - 1; i >= 0; i-- {
						u = u<<8 | uint64(b[i])
					}
					if n > 0 && n < 8 && b[n-1]&0x80 != 0 {
						u |= ^uint64(0) << (8 * n) // sign extension
					}
					v := int64(u)
					if v < math.MinInt32 || v > math.MaxInt32*1024 {
						err = errf("integer %d out of range", v)
					} else {
						err = push(int(v))
					}
				}
			}
		case 'G': // BINFLOAT
			var b []byte
			if b, err = need(8); err == nil {
				err = push(math.Float64frombits(binary.BigEndian.Uint64(b)))
			}
		case 't': // TUPLE
			var items []any
			if items, err = popMark(); err == nil {
				err = push(tuple(items))
			}
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op - 0x84)
			if len(stack) < n {
				err = errf("TUPLE%d with %d values on the stack", n, len(stack))
			} else {
				items := append(tuple(nil), stack[len(stack)-n:]...)
				stack = stack[:len(stack)-n]
				for _, it := range items {
					if _, ok := it.(mark); ok {
						err = errf("MARK inside TUPLE%d", n)
					}
				}
				if err == nil {
					err = push(items)
				}
			}
		case 'c': // GLOBAL module\nname\n
			var mod, name string
			if mod, err = line(prog, &pos); err == nil {
				if name, err = line(prog, &pos); err == nil {
					if err = allowed(mod, name); err == nil {
						err = push(global{mod, name})
					}
				}
			}
		case 'Q': // BINPERSID
			var pid any
			if pid, err = pop(); err == nil {
				var st *storage
				if st, err = persistent(pid); err == nil {
					err = push(st)
				}
			}
		case 'R': // REDUCE
			var args, fn any
			if args, err = pop(); err == nil {
				if fn, err = pop(); err == nil {
					var v any
					if v, err = reduce(fn, args); err == nil {
						err = push(v)
					}
				}
			}
		case 's': // SETITEM
			var k, v any
			if v, err = pop(); err == nil {
				if k, err = pop(); err == nil {
					err = setItems(stack, []any{k, v})
				}
			}
		case 'u': // SETITEMS
			var items []any
			if items, err = popMark(); err == nil {
				err = setItems(stack, items)
			}
		default:
			err = errf("pickle opcode 0x%02x at byte %d is not one a state dict of tensors uses", op, pos-1)
		}
		if err != nil {
			return nil, err
		}
	}
}

func line(prog []byte, pos *int) (string, error) {
	for i := *pos; i < len(prog) && i-*pos < 256; i++ {
		if prog[i] == '\n' {
			s := string(prog[*pos:i])
			*pos = i + 1
			return s, nil
		}
	}
	return "", errf("GLOBAL argument without a newline at byte %d", *pos)
}

// allowed refuses every global but tensor reconstruction.
func allowed(mod, name string) error {
	switch {
	case mod == "collections" && name == "OrderedDict":
	case mod == "torch._utils" && name == "_rebuild_tensor_v2":
	case mod == "torch" && storageTypes[name].dtype != "":
	default:
		return errf("global %s.%s is not allowed: only tensor reconstruction (torch._utils._rebuild_tensor_v2, typed storages, collections.OrderedDict) is", mod, name)
	}
	return nil
}

func setItems(stack []any, items []any) error {
	if len(items)%2 != 0 {
		return errf("SETITEMS with an odd number of values")
	}
	if len(stack) == 0 {
		return errf("SETITEM without a dict")
	}
	d, ok := stack[len(stack)-1].(*dict)
	if !ok {
		return errf("SETITEM on a %s", kind(stack[len(stack)-1]))
	}
	for i := 0; i < len(items); i += 2 {
		d.items = append(d.items, [2]any{items[i], items[i+1]})
	}
	return nil
}

// persistent decodes ('storage', <storage class>, key, location, numel).
func persistent(pid any) (*storage, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) != 5 || t[0] != "storage" {
		return nil, errf("persistent id %v is not ('storage', type, key, location, numel)", pid)
	}
	g, ok := t[1].(global)
	st := storageTypes[g.name]
	if !ok || g.module != "torch" || st.dtype == "" {
		return nil, errf("storage type %v is not a float storage", t[1])
	}
	key, ok1 := t[2].(string)
	numel, ok2 := t[4].(int)
	if !ok1 || !ok2 || numel < 0 || strings.ContainsAny(key, "/\\") || key == "" || key == "." || key == ".." {
		return nil, errf("persistent id %v has a bad key or element count", pid)
	}
	return &storage{dtype: st.dtype, size: st.size, key: key, numel: numel}, nil
}

func ints(v any, what string) ([]int, error) {
	t, ok := v.(tuple)
	if !ok {
		return nil, errf("%s is a %s, not a tuple", what, kind(v))
	}
	out := make([]int, len(t))
	for i, x := range t {
		n, ok := x.(int)
		if !ok || n < 0 {
			return nil, errf("%s has a bad entry %v", what, x)
		}
		out[i] = n
	}
	return out, nil
}

func reduce(fn, args any) (any, error) {
	g, ok := fn.(global)
	if !ok {
		return nil, errf("REDUCE of a %s", kind(fn))
	}
	a, ok := args.(tuple)
	if !ok {
		return nil, errf("REDUCE arguments are a %s", kind(args))
	}
	switch {
	case g.module == "collections" && g.name == "OrderedDict":
		if len(a) != 0 {
			return nil, errf("OrderedDict with arguments")
		}
		return &dict{}, nil
	case g.name == "_rebuild_tensor_v2":
		if len(a) != 6 {
			return nil, errf("_rebuild_tensor_v2 with %d arguments, expected 6", len(a))
		}
		st, ok := a[0].(*storage)
		offset, ok2 := a[1].(int)
		if !ok || !ok2 || offset < 0 {
			return nil, errf("_rebuild_tensor_v2: bad storage or offset")
		}
		shape, err := ints(a[2], "tensor size")
		if err != nil {
			return nil, err
		}
		stride, err := ints(a[3], "tensor stride")
		if err != nil {
			return nil, err
		}
		if len(shape) != len(stride) || len(shape) > 8 {
			return nil, errf("tensor size %v and stride %v", shape, stride)
		}
		if _, ok := a[4].(bool); !ok {
			return nil, errf("_rebuild_tensor_v2: requires_grad is a %s", kind(a[4]))
		}
		if h, ok := a[5].(*dict); !ok || len(h.items) != 0 {
			return nil, errf("_rebuild_tensor_v2: backward hooks are not supported")
		}
		return &rebuilt{st: st, offset: offset, shape: shape, stride: stride}, nil
	}
	return nil, errf("REDUCE of %s.%s", g.module, g.name)
}

// tensor checks the tensor against its storage entry and reads its data.
func (rt *rebuilt) tensor(name string, files map[string]*zip.File, prefix string, budget *int64) (Tensor, error) {
	st := rt.st
	f := files[prefix+"data/"+st.key]
	if f == nil {
		return Tensor{}, errf("%q: storage %q has no zip entry", name, st.key)
	}
	if f.Method != zip.Store {
		return Tensor{}, errf("%q: storage entry is compressed (method %d); torch.save stores storages uncompressed", name, f.Method)
	}
	want := uint64(st.numel) * uint64(st.size)
	if st.numel > math.MaxInt32*64 || f.UncompressedSize64 != want || f.CompressedSize64 != want {
		return Tensor{}, errf("%q: storage %q declares %d elements (%d bytes), its zip entry has %d", name, st.key, st.numel, want, f.UncompressedSize64)
	}
	// Contiguous row-major only: stride[i] = product of shape[i+1:].
	n := 1
	for i := len(rt.shape) - 1; i >= 0; i-- {
		if rt.shape[i] > 1 && rt.stride[i] != n {
			return Tensor{}, errf("%q: size %v stride %v is not contiguous; save tensors with .contiguous()", name, rt.shape, rt.stride)
		}
		if rt.shape[i] != 0 && n > math.MaxInt32*64/rt.shape[i] {
			return Tensor{}, errf("%q: size %v is too large", name, rt.shape)
		}
		n *= rt.shape[i]
	}
	if rt.offset > st.numel || n > st.numel-rt.offset {
		return Tensor{}, errf("%q: %d elements at offset %d do not fit storage %q of %d", name, n, rt.offset, st.key, st.numel)
	}
	if int64(n*st.size) > *budget {
		return Tensor{}, errf("%q: the tensors would need more bytes than the file has", name)
	}
	*budget -= int64(n * st.size)
	rc, err := f.Open()
	if err != nil {
		return Tensor{}, errf("%q: %v", name, err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, int64(rt.offset*st.size)); err != nil {
		return Tensor{}, errf("%q: reading storage %q: %v", name, st.key, err)
	}
	data := make([]byte, n*st.size) // bounded by the entry's checked size
	if _, err := io.ReadFull(rc, data); err != nil {
		return Tensor{}, errf("%q: reading storage %q: %v", name, st.key, err)
	}
	return Tensor{Name: name, DType: st.dtype, Shape: append([]int(nil), rt.shape...), Data: data}, nil
}
