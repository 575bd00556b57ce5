package trainabletokens_test

import (
	"fmt"
	"os"

	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Train two rows of the tiny BERT's token table, then merge them.
func Example() {
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	model, _, err := models.TinyBERT(work)
	if err != nil {
		panic(err)
	}
	tm, err := trainabletokens.New(model, trainabletokens.Config{TokenIndices: []int{100, 101}}, "")
	if err != nil {
		panic(err)
	}
	fmt.Println("trainable rows:", len(tm.TrainableParams()))
	r, _ := tm.Report()
	fmt.Printf("trainable elements: %d (%.2f%%)\n", r.Trainable, r.Percent)
	// ... train tm.TrainableParams() with package finetune, then:
	merged, err := tm.MergeAndUnload(true)
	fmt.Printf("%T %v\n", merged, err)

	_, err = trainabletokens.New(model, trainabletokens.Config{TokenIndices: []int{5, 5}}, "")
	fmt.Println(err)
	// Output:
	// trainable rows: 2
	// trainable elements: 64 (0.07%)
	// *bert.ModelForMaskedLM <nil>
	// trainabletokens: invalid config: token id 5 appears twice in TokenIndices (positions 0 and 1); each id may be listed once
}
