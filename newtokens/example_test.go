package newtokens_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
)

// Add three words to a BERT masked-language model, encode text with them,
// and save the vocabulary files and the grown model. res.IDs is what
// trainabletokens.Config.TokenIndices wants next.
func ExampleAddTokens() {
	dir, cleanup := tinyBERTDir() // HF files + spago_model.bin
	defer cleanup()
	model, err := nn.LoadFromFile[*bert.ModelForMaskedLM](filepath.Join(dir, "spago_model.bin"))
	if err != nil {
		panic(err)
	}
	tok, err := newtokens.LoadTokenizer(dir)
	if err != nil {
		panic(err)
	}

	res, err := newtokens.AddTokens(model, tok, []string{"zorblax", "quindle", "flumph"},
		&newtokens.Options{Init: newtokens.InitSubtokenMean})
	if err != nil {
		panic(err)
	}
	fmt.Println("new ids:", res.IDs, "vocabulary:", res.OldVocabSize, "->", res.NewVocabSize)
	fmt.Println("zorblax started from", res.PerToken[0].SubtokenStrings)

	ids, toks, err := tok.Encode("A Zorblax ate thequindle.")
	if err != nil {
		panic(err)
	}
	fmt.Println(toks, ids)

	if err := newtokens.WriteVocabFiles(dir, tok); err != nil {
		panic(err)
	}
	if err := nn.DumpToFile(model, filepath.Join(dir, "spago_model.bin")); err != nil {
		panic(err)
	}
	_, err = newtokens.AddTokens(model, tok, []string{"the"}, nil)
	fmt.Println(err)
	// Output:
	// new ids: [1038 1039 1040] vocabulary: 1038 -> 1041
	// zorblax started from [z ##or ##b ##l ##a ##x]
	// [a zorblax ate the quindle .] [35 1038 467 171 1039 84]
	// newtokens: invalid tokens: "the" is already in the vocabulary with id 171
}

// tinyBERTDir converts gopeft's tiny test BERT into a temporary model
// directory, silencing the converter's progress line.
func tinyBERTDir() (string, func()) {
	tmp, err := os.MkdirTemp("", "newtokens-example-")
	if err != nil {
		panic(err)
	}
	stdout := os.Stdout
	os.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	dir, err := testmodels.Convert(tmp, "bert-tiny")
	os.Stdout.Close()
	os.Stdout = stdout
	if err != nil {
		panic(err)
	}
	return dir, func() { os.RemoveAll(tmp) }
}
