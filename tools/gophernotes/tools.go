//go:build tools

// Package tools pins the gophernotes kernel for `go install`.
package tools

import _ "github.com/gopherdata/gophernotes"
