package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Member is one member of a JSON object, in document order.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Object decodes exactly one JSON object (nothing but white space may
// follow it) into its members in document order, refusing duplicate keys.
func Object(data []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, found %s", Short(data))
	}
	var out []Member
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
		out = append(out, Member{key, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after the JSON object")
	}
	return out, nil
}

// Fields is Object as a map by key (duplicates are still refused).
func Fields(data []byte) (map[string]json.RawMessage, error) {
	members, err := Object(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		out[m.Key] = m.Value
	}
	return out, nil
}

// Value decodes one JSON value, numbers as json.Number.
func Value(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Naturals converts a decoded JSON array of non-negative integers (each
// written as plain digits and fitting in 64 bits); want >= 0 fixes its
// length.
func Naturals(v any, want int) ([]uint64, error) {
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
		u, err := Natural(n.String())
		if err != nil {
			return nil, fmt.Errorf("element %d: %v", i, err)
		}
		out[i] = u
	}
	return out, nil
}

// Natural parses plain decimal digits without sign, fraction or exponent.
func Natural(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a non-negative integer", s)
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s does not fit in 64 bits", s)
	}
	return u, nil
}

// Short renders raw JSON for an error message: white space collapsed, at
// most 60 bytes, invalid UTF-8 replaced.
func Short(raw []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(raw), "\uFFFD")), " ")
	if len(s) > 60 {
		s = strings.ToValidUTF8(s[:57], "") + "..."
	}
	return s
}
