// Tools module for the gophernotes Jupyter kernel, built by
// tools/notebooks/install.sh. Kept apart from the project's go.mod:
// gophernotes brings gomacro, zmq4 and x/tools, and needs gotypesalias=0.
module github.com/gopeft/gopeft/tools/gophernotes

go 1.26.0

// gomacro's type converter does not know *types.Alias (the Go 1.23+ default).
// Go 1.27 drops this setting; gophernotes will stop working there.
godebug gotypesalias=0

require github.com/gopherdata/gophernotes v0.7.5

// Pinned above what gophernotes v0.7.5 asks for:
//   - gomacro: the newest the proxy serves; it skips generic declarations
//     on import instead of crashing on them (Go 1.22+ stdlib is generic);
//   - x/tools: gomacro's v0.14.0 no longer compiles on Go 1.26.
// Packages linked into both this binary and the plugins gomacro builds for
// each import must have the same version: x/sync v0.24.0 is also the
// project's (go.mod at the root); keep them in step.
require (
	github.com/cosmos72/gomacro v0.0.0-20240506194242-2ff796e3da10 // indirect
	github.com/go-zeromq/goczmq/v4 v4.2.2 // indirect
	github.com/go-zeromq/zmq4 v0.14.1 // indirect
	github.com/gofrs/uuid v4.2.0+incompatible // indirect
	github.com/mattn/go-runewidth v0.0.15 // indirect
	github.com/peterh/liner v1.2.2 // indirect
	github.com/rivo/uniseg v0.2.0 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)

// v0.7.5 plus jsoner.patch (the fix on gophernotes' master branch, never
// released). install.sh recreates _patched from the module cache.
replace github.com/gopherdata/gophernotes => ./_patched
