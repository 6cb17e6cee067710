package postgres_test

import (
	"testing"

	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestBackupContract(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore {
		return openStore(t, pgtest.Database(t))
	})
}
