//go:build !amd64 || purego

package vmath

func supported() []*impl { return []*impl{goImpl} }
