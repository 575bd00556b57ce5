package newtokens

import (
	"strings"
	"unicode/utf8"
)

// runeToByte inverts the GPT-2 / RoBERTa / BART byte-level alphabet: each
// byte is written as one printable rune in vocab.json ("Ġ" is the space).
// Bytes that are printable Latin-1 stand for themselves; the others are
// numbered from U+0100 in byte order.
var runeToByte = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	next := rune(0x100)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			m[rune(b)] = byte(b)
		} else {
			m[next] = byte(b)
			next++
		}
	}
	return m
}()

// appendByteLevel appends the bytes a byte-level BPE token stands for.
// Runes outside the alphabet are kept as UTF-8.
func appendByteLevel(dst []byte, token string) []byte {
	for _, r := range token {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
		} else {
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

// decodeByteLevel turns bytes into text, replacing invalid UTF-8 with
// U+FFFD as Hugging Face's byte-level decoder does (errors="replace").
func decodeByteLevel(b []byte) string {
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
