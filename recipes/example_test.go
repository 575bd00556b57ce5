package recipes_test

import (
	"fmt"
	"os"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Add a word to the tiny BERT, train only its row, and see it predicted.
func Example() {
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	m, dir, err := models.TinyBERT(work)
	if err != nil {
		panic(err)
	}
	tok, _ := newtokens.LoadTokenizer(dir)
	added, err := newtokens.AddTokens(m, tok, []string{"quindle"}, nil)
	if err != nil {
		panic(err)
	}
	lines, _ := gopeft.CorpusLines("mlm_train.txt")
	examples, _ := recipes.MaskOccurrences(tok, lines, added.IDs)
	tm, _ := trainabletokens.New(m, trainabletokens.Config{TokenIndices: added.IDs}, "")
	if _, err := recipes.TrainMLM(m, tm, examples, recipes.TrainOptions{Epochs: 2, LR: 0.05, Quiet: true}); err != nil {
		panic(err)
	}
	top, _ := recipes.TopPredictions(m, tm, tok, "i saw a blue [MASK] on the table .", 1)
	fmt.Println(top[0].Token)
	// Output:
	// quindle
}
