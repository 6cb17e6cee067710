//go:build !(linux || darwin || freebsd)

package vectorindex

func mapAnon(int) ([]byte, bool) { return nil, false }

func unmap([]byte) {}
