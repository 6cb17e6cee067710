package telemetry

import (
	"context"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// memory.Transfer

var _ memory.Transfer = (*ObservedStore)(nil)

// Export reads memories for an export in one span and one timing (the
// whole export).
func (o *ObservedStore) Export(ctx context.Context, a memory.Access, q memory.ExportQuery, start func(count int) error, page func([]memory.Exported) error) (err error) {
	ctx, end := o.start(ctx, "Export")
	defer func() { end(err) }()
	return o.transfer.Export(ctx, a, q, start, page)
}

// Import runs an import transaction in one span and one timing.
func (o *ObservedStore) Import(ctx context.Context, fn func(memory.ImportTx) error) (err error) {
	ctx, end := o.start(ctx, "Import")
	defer func() { end(err) }()
	return o.transfer.Import(ctx, fn)
}
