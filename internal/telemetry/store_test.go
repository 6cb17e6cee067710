package telemetry_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// TestObservedStoreKeepsCapabilities reads the memory package and finds
// every interface the service asserts on its store (s.store.(X)); the
// wrapper must implement each, or wrapping would silently switch a feature
// off.
func TestObservedStoreKeepsCapabilities(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../memory/*.go")
	if err != nil {
		t.Fatal(err)
	}
	ifaces := map[string][]string{} // interface name -> method names
	var asserted []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				if it, ok := n.Type.(*ast.InterfaceType); ok {
					for _, m := range it.Methods.List {
						for _, name := range m.Names {
							ifaces[n.Name.Name] = append(ifaces[n.Name.Name], name.Name)
						}
					}
				}
			case *ast.TypeAssertExpr:
				sel, ok := n.X.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "store" || n.Type == nil {
					return true
				}
				switch typ := n.Type.(type) {
				case *ast.Ident:
					asserted = append(asserted, typ.Name)
				default:
					t.Errorf("%s: the service asserts an unnamed interface on its store; name it in package memory so that telemetry.ObservedStore can be checked against it", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
	if len(asserted) == 0 {
		t.Fatal("found no s.store.(X) assertions in package memory; the check is not looking at the right code")
	}
	// The wrapper of a store with every capability (ObservedTieredStore).
	wrapper := reflect.TypeFor[*telemetry.ObservedTieredStore]()
	slices.Sort(asserted)
	for _, name := range slices.Compact(asserted) {
		methods, ok := ifaces[name]
		if !ok {
			t.Errorf("memory asserts %s on its store but it is not an interface declared in package memory", name)
			continue
		}
		for _, m := range methods {
			if _, ok := wrapper.MethodByName(m); !ok {
				t.Errorf("memory.Service asserts memory.%s on its store, and telemetry.ObservedStore lacks its method %s: forward it (with a span and metrics) in internal/telemetry/store.go", name, m)
			}
		}
	}
}

// TestBothStoresAreObserved: ObserveStore leaves a store that lacks one of
// the capabilities it forwards uninstrumented; both stores (and PostgreSQL
// with read replicas, postgres.Routed) have them all, so serve never runs
// without store metrics.
func TestBothStoresAreObserved(t *testing.T) {
	caps := []reflect.Type{reflect.TypeFor[memory.Lookup](), reflect.TypeFor[memory.GraphStore](), reflect.TypeFor[memory.Transfer]()}
	for _, st := range []reflect.Type{reflect.TypeFor[*sqlite.Store](), reflect.TypeFor[*postgres.Store](), reflect.TypeFor[*postgres.Routed]()} {
		for _, c := range caps {
			if !st.Implements(c) {
				t.Errorf("%s does not implement %s: ObserveStore would not wrap it", st, c)
			}
		}
	}
}

func principalCtx(ctx context.Context) context.Context {
	return auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}})
}

// TestObservedStore runs the service over a wrapped SQLite store and finds
// a span and a timing per store call, the spans children of the caller's,
// and the capabilities of the store still reachable.
func TestObservedStore(t *testing.T) {
	ctx := t.Context()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "obs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.Build{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewTestTracing(exp)
	st := telemetry.ObserveStore(inner, m, tr.Provider)
	if _, ok := st.(*telemetry.ObservedTieredStore); !ok {
		t.Fatalf("the SQLite store was not wrapped as an ObservedTieredStore (%T): it lacks a capability the wrapper implements", st)
	}
	svc := memory.NewService(st, memory.Options{})

	pctx, parent := telemetry.Tracer(tr.Provider).Start(principalCtx(ctx), "caller")
	if _, _, err := svc.Add(pctx, memory.Input{Content: "the deploy script lives in deploy/build-image.sh", Category: "workflow", Entity: "deploy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Search(pctx, memory.SearchQuery{Text: "deploy script"}, memory.ViaREST); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(pctx, "01J00000000000000000000000", memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("Get of a missing id: %v, want ErrNotFound", err)
	}
	// A graph call goes through GraphStore on the wrapper.
	if _, err := svc.Entities(pctx, memory.EntityQuery{Prefix: "dep"}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	for _, op := range []string{"Create", "Search", "Get", "Entities"} {
		if n := testutil.CollectAndCount(m.StoreOperationDuration.WithLabelValues(op).(prometheus.Histogram)); n != 1 {
			t.Errorf("store duration series for %s: %d, want 1", op, n)
		}
	}
	if got := testutil.ToFloat64(m.StoreErrors.WithLabelValues("Get")); got != 0 {
		t.Errorf("store errors for a not-found Get = %v, want 0 (not found is an answer, not a failure)", got)
	}
	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	caller := byName["caller"]
	for _, name := range []string{"store.Create", "store.Search", "store.Get", "store.Entities"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no span %s among %d spans", name, len(spans))
			continue
		}
		if s.SpanContext.TraceID() != caller.SpanContext.TraceID() || s.Parent.SpanID() != caller.SpanContext.SpanID() {
			t.Errorf("%s is not a child of the caller's span", name)
		}
	}
}

func TestObservedEmbedder(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.Build{})
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewTestTracing(exp)
	b := embed.NewBuiltin()
	ok := telemetry.ObserveEmbedder(b, m, tr.Provider)
	if _, err := ok.Embed(t.Context(), []string{"one", "two"}); err != nil {
		t.Fatal(err)
	}
	// A real HTTP embedder whose server is gone: the connection is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h, err := embed.NewHTTP(embed.HTTPConfig{URL: "http://" + addr + "/v1", Model: "m", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	bad := telemetry.ObserveEmbedder(h, m, tr.Provider)
	if _, err := bad.Embed(t.Context(), []string{"x"}); !errors.Is(err, embed.ErrUnavailable) {
		t.Fatalf("err = %v, want the embedder's error unchanged", err)
	}
	if n := testutil.CollectAndCount(m.EmbedderRequestDuration); n != 1 {
		t.Fatalf("embedder duration series = %d", n)
	}
	if got := testutil.ToFloat64(m.EmbedderErrors); got != 1 {
		t.Errorf("embedder errors = %v, want 1", got)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "embedder.Embed" || spans[1].Status.Code.String() != "Error" {
		t.Errorf("spans = %+v", spans)
	}
	if ok.Model() != b.Model() || ok.Dim() != b.Dim() || ok.Unwrap() != embed.Embedder(b) {
		t.Error("the wrapper does not report its embedder's model and dimension")
	}
}
