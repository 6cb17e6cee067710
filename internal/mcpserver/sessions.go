package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"time"

	"github.com/codingbrain/codingbrain/internal/kv"
)

// Streamable HTTP sessions (protocol 2025-11-25 and earlier) across replicas.
//
// The replica that answers initialize keeps the SDK session in memory (with
// its standalone GET stream and server-to-client requests) and records a
// binding in the shared kv.Store before the client sees the session id:
// which principal owns the session and the protocol it negotiated. The
// binding, not the replica's memory, decides whether a session exists:
//
//   - a request with Mcp-Session-Id is checked against the binding first:
//     absent or expired is 404 (the client starts a new session, as the
//     protocol prescribes), another principal is 403, shared state that
//     cannot be reached is 503;
//   - the replica that holds the session serves it in full; any other
//     replica adopts it, serving the request on a per-request session
//     restored from the binding (requests and responses work; a standalone
//     GET stream is declined with 405, which clients accept);
//   - DELETE removes the binding, so the session ends on every replica.
//
// Bindings expire after sessionIdle without requests and are refreshed at
// most every sessionTouch while in use.
const (
	sessionIdle  = 30 * time.Minute
	sessionTouch = time.Minute
	sessionKey   = "mcp:session:"
)

// binding is what every replica knows of a session.
type binding struct {
	User     string    `json:"user"`
	Protocol string    `json:"protocol,omitempty"`
	Client   string    `json:"client,omitempty"`
	Created  time.Time `json:"created"`
	Touched  time.Time `json:"touched"`
}

type sessionStore struct{ kv kv.Store }

func (st sessionStore) get(ctx context.Context, sid string) (binding, error) {
	var b binding
	raw, err := st.kv.Get(ctx, sessionKey+sid)
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("decode session binding: %w", err)
	}
	return b, nil
}

func (st sessionStore) put(ctx context.Context, sid string, b binding) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return st.kv.Set(ctx, sessionKey+sid, raw, sessionIdle)
}

func (st sessionStore) delete(ctx context.Context, sid string) error {
	return st.kv.Delete(ctx, sessionKey+sid)
}

// openSession serves a sessionful POST without a session id — initialize —
// on the local SDK handler, and binds the session it creates before the
// response leaves.
func (s *Server) openSession(w http.ResponseWriter, r *http.Request, body []byte) {
	b := binding{User: userID(r.Context()), Protocol: initializeVersion(body), Client: clientName(body)}
	bw := &bindingWriter{ResponseWriter: w, header: http.Header{}, bind: func(sid string) error {
		b.Created = time.Now().UTC()
		b.Touched = b.Created
		return s.sessions.put(r.Context(), sid, b)
	}}
	s.stateful.ServeHTTP(bw, r)
	if bw.err != nil {
		s.log.ErrorContext(r.Context(), "mcp session not opened: shared state unavailable", "err", bw.err)
	}
}

// serveSession serves a request that names a session.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, sid string) {
	ctx := r.Context()
	b, err := s.sessions.get(ctx, sid)
	switch {
	case errors.Is(err, kv.ErrMiss):
		http.Error(w, "session not found; start a new session with initialize", http.StatusNotFound)
		return
	case err != nil:
		s.log.ErrorContext(ctx, "mcp session lookup failed", "err", err)
		unavailable(w)
		return
	}
	if user := userID(ctx); b.User != user {
		s.log.WarnContext(ctx, "mcp session used by another principal", "user", user, "remote", r.RemoteAddr)
		s.auditHijack(r, b.User, "streamable_http", sid)
		http.Error(w, "session belongs to another principal", http.StatusForbidden)
		return
	}

	if r.Method == http.MethodDelete {
		if err := s.sessions.delete(ctx, sid); err != nil {
			s.log.ErrorContext(ctx, "mcp session delete failed", "err", err)
			unavailable(w)
			return
		}
		lw := &localWriter{ResponseWriter: w, header: http.Header{}}
		s.stateful.ServeHTTP(lw, r)
		if lw.missing {
			w.WriteHeader(http.StatusNoContent)
		}
		return
	}
	if now := time.Now().UTC(); now.Sub(b.Touched) >= sessionTouch {
		b.Touched = now
		if err := s.sessions.put(ctx, sid, b); err != nil {
			s.log.WarnContext(ctx, "mcp session refresh failed", "err", err)
		}
	}

	var body []byte
	if r.Body != nil {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			bodyError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if s.scopeChallenge(w, r, body) {
			return
		}
	}
	lw := &localWriter{ResponseWriter: w, header: http.Header{}}
	s.stateful.ServeHTTP(lw, r)
	if !lw.missing {
		return
	}
	// Opened on another replica (or expired here while the client worked
	// elsewhere): adopt it for this request.
	if r.Header.Get("Mcp-Protocol-Version") == "" && b.Protocol != "" {
		r.Header.Set("Mcp-Protocol-Version", b.Protocol)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.stateless.ServeHTTP(w, r)
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "session state temporarily unavailable; retry", http.StatusServiceUnavailable)
}

func bodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		http.Error(w, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
		return
	}
	http.Error(w, "failed to read body", http.StatusBadRequest)
}

// initializeVersion and clientName read an initialize request's params.
func initializeVersion(body []byte) string {
	var msg struct {
		Params struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"params"`
	}
	_ = json.Unmarshal(body, &msg)
	return msg.Params.ProtocolVersion
}

func clientName(body []byte) string {
	var msg struct {
		Params struct {
			ClientInfo struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"clientInfo"`
		} `json:"params"`
	}
	_ = json.Unmarshal(body, &msg)
	if msg.Params.ClientInfo.Version == "" {
		return msg.Params.ClientInfo.Name
	}
	return msg.Params.ClientInfo.Name + "/" + msg.Params.ClientInfo.Version
}

// bindingWriter records the binding of a new session (the response names
// it in Mcp-Session-Id) before the response is sent. When the binding
// cannot be stored, the client gets 503 instead of a session that other
// replicas would not know.
type bindingWriter struct {
	http.ResponseWriter
	header  http.Header
	bind    func(sid string) error
	decided bool
	err     error
}

func (w *bindingWriter) Header() http.Header         { return w.header }
func (w *bindingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *bindingWriter) WriteHeader(code int) {
	if w.decided {
		return
	}
	w.decided = true
	if sid := w.header.Get("Mcp-Session-Id"); sid != "" && code < 300 {
		if w.err = w.bind(sid); w.err != nil {
			unavailable(w.ResponseWriter)
			return
		}
	}
	maps.Copy(w.ResponseWriter.Header(), w.header)
	w.ResponseWriter.WriteHeader(code)
}

func (w *bindingWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return len(p), nil // the 503 is already written; drop the body
	}
	return w.ResponseWriter.Write(p)
}

func (w *bindingWriter) Flush() {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// localWriter passes a response through unless the local handler does not
// know the session (404 before anything is written); then it writes nothing
// and sets missing, so the caller can serve the request another way.
type localWriter struct {
	http.ResponseWriter
	header  http.Header
	decided bool
	missing bool
}

func (w *localWriter) Header() http.Header         { return w.header }
func (w *localWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *localWriter) WriteHeader(code int) {
	if w.decided {
		return
	}
	w.decided = true
	if code == http.StatusNotFound {
		w.missing = true
		return
	}
	maps.Copy(w.ResponseWriter.Header(), w.header)
	w.ResponseWriter.WriteHeader(code)
}

func (w *localWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.missing {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *localWriter) Flush() {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if !w.missing {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}
