//go:build linux || darwin || freebsd

package vectorindex

import "syscall"

func mapAnon(size int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	return b, err == nil
}

func unmap(b []byte) { _ = syscall.Munmap(b) }
