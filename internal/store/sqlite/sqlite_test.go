package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) memory.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}
