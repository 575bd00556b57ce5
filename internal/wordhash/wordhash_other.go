//go:build !amd64 || purego

package wordhash

func supported() []*impl { return []*impl{goImpl} }
