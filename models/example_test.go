package models_test

import (
	"fmt"
	"os"

	"github.com/gopeft/gopeft/models"
)

// Get the embedded tiny BERT as a cybertron model, in one non-generic call.
func ExampleTinyBERT() {
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	m, dir, err := models.TinyBERT(work)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Bert.Config.VocabSize, m.Bert.Config.HiddenSize)
	_, err = os.Stat(dir + "/" + models.SpagoFile)
	fmt.Println(err == nil)
	// Output:
	// 1038 32
	// true
}
