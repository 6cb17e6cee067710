package mcpserver

import (
	"crypto/rand"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// sseHandler serves the legacy HTTP+SSE transport. It does what
// mcp.SSEHandler does, and also binds each session to the principal that
// opened it: the SDK's handler lets any authenticated caller post into any
// session whose id it knows, and messages posted to a session run as the
// principal of its GET.
type sseHandler struct {
	server  *mcp.Server
	log     *slog.Logger
	maxBody int64

	mu       sync.Mutex
	sessions map[string]*sseSession

	hijack func(r *http.Request, owner, sid string) // audits a request on another principal's session
}

type sseSession struct {
	transport *mcp.SSEServerTransport
	userID    string
}

func (h *sseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rebinding(r) {
		http.Error(w, "Forbidden: invalid Host header "+r.Host, http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.serveStream(w, r)
	case http.MethodPost:
		h.serveMessage(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

// serveStream runs one session for the lifetime of the GET.
func (h *sseHandler) serveStream(w http.ResponseWriter, r *http.Request) {
	ti := sdkauth.TokenInfoFromContext(r.Context())
	p, ok := principalOf(ti)
	if !ok {
		http.Error(w, "no principal", http.StatusUnauthorized)
		return
	}
	id := rand.Text()
	endpoint, err := r.URL.Parse("?sessionid=" + id)
	if err != nil {
		http.Error(w, "failed to create endpoint", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	t := &mcp.SSEServerTransport{Endpoint: endpoint.RequestURI(), Response: w, MaxRequestBodyBytes: h.maxBody}

	h.mu.Lock()
	h.sessions[id] = &sseSession{transport: t, userID: ti.UserID}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.sessions, id)
		h.mu.Unlock()
	}()

	// Messages arrive on other requests, so tools find the session's
	// principal in the connection's context.
	ss, err := h.server.Connect(auth.WithPrincipal(r.Context(), p), t, nil)
	if err != nil {
		h.log.ErrorContext(r.Context(), "connect sse session", "err", err)
		http.Error(w, "connection failed", http.StatusInternalServerError)
		return
	}
	ended := make(chan struct{})
	go func() {
		_ = ss.Wait()
		close(ended)
	}()
	select {
	case <-r.Context().Done():
		_ = ss.Close()
		<-ended
	case <-ended:
	}
}

// serveMessage delivers a POSTed message to its session, if the caller is
// the principal that opened it.
func (h *sseHandler) serveMessage(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
		return
	}
	id := r.URL.Query().Get("sessionid")
	if id == "" {
		http.Error(w, "sessionid must be provided", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	sess := h.sessions[id]
	h.mu.Unlock()
	if sess == nil {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	if ti := sdkauth.TokenInfoFromContext(r.Context()); ti == nil || ti.UserID != sess.userID {
		h.log.WarnContext(r.Context(), "mcp sse session used by another principal", "user", userID(r.Context()), "remote", r.RemoteAddr)
		if h.hijack != nil {
			h.hijack(r, sess.userID, id)
		}
		http.Error(w, "session user mismatch", http.StatusForbidden)
		return
	}
	sess.transport.ServeHTTP(w, r)
}

// rebinding reports a request that reached a loopback listener under a
// non-loopback Host name: the signature of a DNS-rebinding attack. It is the
// check the SDK's handlers make.
func rebinding(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && local != nil && isLoopback(local.String()) && !isLoopback(r.Host)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
