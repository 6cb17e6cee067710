package transfer_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/transfer"
)

// benchFile is an export file of n memories of alice's team, each with
// one history entry, as an export writes them.
func benchFile(n int) []byte {
	var buf bytes.Buffer
	w := transfer.NewWriter(&buf)
	_ = w.WriteHeader(transfer.Header{ExportedAt: time.Now(), Counts: transfer.Counts{Memories: &n}, History: true})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		m := memory.Memory{
			ID: fmt.Sprintf("01BENCH%08d", i), Content: fmt.Sprintf("Memory %d: the service %d retries failed calls %d times with backoff", i, i%97, i%7),
			Category: "architecture", Scope: "team", AccessEntity: "team:acme/web", Source: "user", State: memory.StateActive,
			Entity: fmt.Sprintf("service-%d", i%97), Tags: map[string]any{"lang": "go"}, CreatedBy: "alice",
			CreatedAt: at.Add(time.Duration(i) * time.Second), UpdatedAt: at.Add(time.Duration(i) * time.Second),
		}
		after := m
		_ = w.Write(memory.Exported{Memory: m, History: []memory.HistoryEntry{{Actor: "alice", Action: "create", At: m.CreatedAt, After: &after}}})
	}
	return buf.Bytes()
}

// BenchmarkImport imports 10,000 memories (with history and graph) into
// an empty store per iteration, all in one transaction, and reports
// memories per second.
func BenchmarkImport(b *testing.B) {
	const n = 10000
	file := benchFile(n)
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				svc := newService(st.open(b))
				b.StartTimer()
				start := time.Now()
				rep, err := importFile(svc, alice, memory.OnConflictFail, file)
				total += time.Since(start)
				if err != nil || rep.Imported != n {
					b.Fatalf("import: %v %+v", err, rep.Errors)
				}
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "memories/s")
		})
	}
}

// BenchmarkExport exports 10,000 memories with their history per
// iteration and reports memories per second.
func BenchmarkExport(b *testing.B) {
	const n = 10000
	file := benchFile(n)
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			svc := newService(st.open(b))
			if _, err := importFile(svc, alice, memory.OnConflictFail, file); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				w := transfer.NewWriter(io.Discard)
				got, err := svc.Export(as(alice), memory.ExportQuery{History: true}, func(int) error { return nil }, w.Write)
				total += time.Since(start)
				if err != nil || got != n {
					b.Fatalf("export: %d %v", got, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "memories/s")
		})
	}
}
