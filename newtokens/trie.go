package newtokens

import "unicode"

// matcher finds added and special tokens inside a text, Hugging Face
// "added-token trie" style: scanning left to right, at each position the
// longest token that starts there wins, anywhere in the text (no word
// boundaries needed).
//
// Tokens are kept in rune tries. Special tokens are always matched against
// the original text; added tokens are matched against the lower-cased text
// when the tokenizer lower-cases (their keys are lower-cased too).
type matcher struct {
	special *trieNode
	added   *trieNode
	// lstrip holds tokens that swallow the whitespace before them (BART's
	// <mask>, as Hugging Face's AddedToken(lstrip=True)).
	lstrip map[string]bool
}

type trieNode struct {
	next map[rune]*trieNode
	// token is the token this node completes, "" if none.
	token string
}

func (n *trieNode) insert(key []rune, token string) {
	for _, r := range key {
		if n.next == nil {
			n.next = map[rune]*trieNode{}
		}
		c := n.next[r]
		if c == nil {
			c = &trieNode{}
			n.next[r] = c
		}
		n = c
	}
	n.token = token
}

// longest returns the token of the longest key that starts at text[i] and
// its length in runes (0 when none).
func (n *trieNode) longest(text []rune, i int) (string, int) {
	best, bestLen := "", 0
	for j := i; n != nil && j < len(text); j++ {
		n = n.next[text[j]]
		if n == nil {
			break
		}
		if n.token != "" {
			best, bestLen = n.token, j-i+1
		}
	}
	return best, bestLen
}

// piece is one part of a pre-split text: either a matched token (isToken)
// or a run of ordinary text to hand to the model's own tokenizer.
type piece struct {
	text    string
	isToken bool
}

// split cuts text into pieces. orig and folded have the same rune count
// (folded is the per-rune lower-cased text, or orig itself). Ordinary text
// pieces are taken from folded, because that is what the model tokenizer
// must see.
func (m *matcher) split(orig, folded []rune) []piece {
	var out []piece
	start := 0
	for i := 0; i < len(orig); {
		tok, n := m.special.longest(orig, i)
		if t2, n2 := m.added.longest(folded, i); n2 > n {
			tok, n = t2, n2
		}
		if n == 0 {
			i++
			continue
		}
		end := i
		if m.lstrip[tok] {
			for end > start && unicode.IsSpace(folded[end-1]) {
				end--
			}
		}
		if start < end {
			out = append(out, piece{text: string(folded[start:end])})
		}
		out = append(out, piece{text: tok, isToken: true})
		i += n
		start = i
	}
	if start < len(orig) {
		out = append(out, piece{text: string(folded[start:])})
	}
	return out
}
