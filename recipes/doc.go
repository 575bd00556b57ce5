// Package recipes puts newtokens, trainabletokens and finetune together for
// the workflow this project exists for: add words to a cybertron model,
// train only their rows, and measure what was learned. The main example
// (examples/newtokens) and the notebooks are built from these calls, and the
// tests here show on the tiny BERT that training only the new rows learns.
//
// Everything is non-generic, so notebooks under gophernotes can call it.
package recipes
