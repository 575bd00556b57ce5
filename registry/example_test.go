package registry_test

import (
	"fmt"
	"os"

	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/registry"
)

// Resolve PEFT-style target_modules on cybertron's BART.
func ExampleLayout_Match() {
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	m, _, err := models.TinyBART(work)
	if err != nil {
		panic(err)
	}
	l, _ := registry.Describe(m)
	for _, names := range [][]string{{"embed_tokens"}, {"lm_head"}, {"decoder.embed_positions"}} {
		tables, err := l.Match(registry.Targets{Names: names})
		fmt.Println(names, "→", tables[0].HFPath, err)
	}
	_, err = l.Match(registry.Targets{Names: []string{"word_embeddings"}})
	fmt.Println(err != nil)
	// Output:
	// [embed_tokens] → model.shared <nil>
	// [lm_head] → model.shared <nil>
	// [decoder.embed_positions] → model.decoder.embed_positions <nil>
	// true
}
