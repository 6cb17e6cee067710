package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The codingbrain binary is built once per test process and shared by every
// test that drives it; the directory is removed when TestMain returns, or
// left to the OS temp cleaner if a test binary is killed.
var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildBinary returns the path of a codingbrain binary built from this
// package, building it on first use.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "codingbrain-bin-")
		if err != nil {
			built.err = err
			return
		}
		name := "codingbrain"
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		built.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build codingbrain: %v\n%s", built.err, built.out)
	}
	return built.path
}

// runTests runs the tests; on unix it also removes the shared PostgreSQL
// cluster of pgtest (postgres_e2e_test.go).
var runTests = func(m *testing.M) int { return m.Run() }

func TestMain(m *testing.M) {
	code := runTests(m)
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}
