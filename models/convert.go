package models

// Quiet conversion. cybertron's converter prints a progress line with
// fmt.Printf and a report through zerolog's global logger; neither can be
// redirected for one call without changing process-wide state (os.Stdout,
// zerolog's global level), which a library must not do. So the conversion
// runs in a child process: the running executable itself, started with
// convertEnv set. This package's init sees the variable, converts, and
// exits before the program's own main runs; the child's stdout is
// discarded and its stderr becomes the error message.
//
// The child can only be the running executable when that executable links
// this package (a program or test binary importing it; GoNB's binaries).
// Under an interpreter that loads Go packages as plugins (gophernotes) it
// does not, and Convert converts in-process: the converter's noise then
// shows, and nothing global is changed to hide it.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"

	"github.com/nlpodyssey/cybertron/pkg/converter"
	"github.com/rs/zerolog"
)

const (
	// convertEnv names the model directory the child converts.
	convertEnv = "GOPEFT_INTERNAL_CONVERT_DIR"
	// modulePath is this module, which an executable must link for the
	// child conversion to work.
	modulePath = "github.com/gopeft/gopeft"
)

func init() {
	dir, ok := os.LookupEnv(convertEnv)
	if !ok {
		return
	}
	// This process exists only to convert: its global state is its own.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	if err := convertRecovering(dir); err != nil {
		fmt.Fprint(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// convertRecovering runs cybertron's converter, turning its panics (it
// panics on some malformed inputs) into errors.
func convertRecovering(dir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cybertron's converter panicked: %v", r)
		}
	}()
	return converter.Convert[float32](dir, true)
}

// canReexec reports whether the running executable links this module.
func canReexec() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	if bi.Main.Path == modulePath {
		return true
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			return true
		}
	}
	return false
}

// convertQuietly converts dir (overwriting) in a child process when it
// can, in this process otherwise.
func convertQuietly(dir string) error {
	exe, err := os.Executable()
	if err != nil || !canReexec() {
		return convertRecovering(dir)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), convertEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // stdout: discarded (nil is the null device)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}
