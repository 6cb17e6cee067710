package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestBackupContract(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "codingbrain.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
