//go:build !amd64 || purego

package engine

// optimAsm lists no passes: the pure-Go ones are the only ones on this
// architecture or under the purego build tag.
func optimAsm() []impl[optimKernel] { return nil }
