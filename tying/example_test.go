package tying_test

import (
	"fmt"
	"os"

	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/tying"
)

// Find what shares the token rows of cybertron's BART.
func ExampleDetect() {
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	m, _, err := models.TinyBART(work)
	if err != nil {
		panic(err)
	}
	l, _ := registry.Describe(m)
	groups, _ := tying.Detect(l)
	g := groups[0]
	fmt.Println(g.Table.HFPath, len(g.Aliases), "slots")
	fmt.Println("copy:", g.Copies[0].Output.HFPath, g.Copies[0].MaxAbsDiff)
	// Output:
	// model.shared 3 slots
	// copy: lm_head 0
}
