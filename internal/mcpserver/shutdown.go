package mcpserver

import (
	"context"
	"sync"
)

// CloseSessions ends every MCP session this process serves, for a graceful
// shutdown: each session finishes the requests it is running, then its
// stream ends cleanly — the SSE GET of the legacy transport, the standalone
// GET of a Streamable HTTP session — so that clients reconnect, to another
// replica behind a load balancer. http.Server.Shutdown neither waits for
// nor ends such streams; call this from http.Server.RegisterOnShutdown.
// Shared session bindings are kept, so that another replica can go on
// serving a Streamable HTTP session. It returns when every session has
// ended or ctx is done.
func (s *Server) CloseSessions(ctx context.Context) {
	var wg sync.WaitGroup
	for ss := range s.mcp.Sessions() {
		wg.Go(func() { _ = ss.Close() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
