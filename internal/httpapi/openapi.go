package httpapi

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// OpenAPI builds the OpenAPI 3.1 document from Routes, so the document and
// the mux cannot drift apart; a golden file in the tests pins its content.
func OpenAPI(version string) (map[string]any, error) {
	schemas := map[string]any{}
	ref := func(v any) (map[string]any, error) {
		t := reflect.TypeOf(v)
		name := schemaName(t)
		if _, ok := schemas[name]; !ok {
			s, err := jsonschema.ForType(t, &jsonschema.ForOptions{
				TypeSchemas: map[reflect.Type]*jsonschema.Schema{
					reflect.TypeFor[time.Time]():  {Type: "string", Format: "date-time"},
					reflect.TypeFor[stringList](): {Types: []string{"string", "array"}, Items: &jsonschema.Schema{Type: "string"}},
				},
			})
			if err != nil {
				return nil, fmt.Errorf("schema of %s: %w", name, err)
			}
			schemas[name] = s
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}, nil
	}
	errRef, err := ref(errorBody{})
	if err != nil {
		return nil, err
	}
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
	}
	// The rate limit's headers (ratelimit.go), on every answer of a route
	// whose class is limited, and Retry-After on 429.
	headerRef := func(names ...string) map[string]any {
		hs := map[string]any{}
		for _, n := range names {
			hs[n] = map[string]any{"$ref": "#/components/headers/" + n}
		}
		return hs
	}
	rateHeaders := []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
	intHeader := func(desc string) map[string]any {
		return map[string]any{"description": desc, "schema": map[string]any{"type": "integer", "minimum": 0}}
	}
	headers := map[string]any{
		"X-RateLimit-Limit":     intHeader("requests the caller's bucket for this route class holds (sent while the class is limited)"),
		"X-RateLimit-Remaining": intHeader("whole requests left in the bucket"),
		"X-RateLimit-Reset":     intHeader("seconds until the bucket is full again"),
		"Retry-After":           intHeader("seconds until one request is allowed"),
	}
	paths := map[string]any{}
	for _, rt := range Routes() {
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
			"security":    []any{map[string]any{"bearer": rt.Scopes}},
			"x-scopes":    rt.Scopes,
		}
		var params []any
		for _, name := range pathParams(rt.Path) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, p := range rt.Query {
			schema := map[string]any{"type": p.Type}
			if p.Repeat {
				schema = map[string]any{"type": "array", "items": map[string]any{"type": p.Type}}
			}
			params = append(params, map[string]any{"name": p.Name, "in": "query", "description": p.Description, "schema": schema})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Request != nil {
			r, err := ref(rt.Request)
			if err != nil {
				return nil, err
			}
			op["requestBody"] = map[string]any{"required": true, "content": content(rt.RequestTypes, r)}
		}
		resp, err := ref(rt.Response)
		if err != nil {
			return nil, err
		}
		limited := errResp("rate limited: the caller's bucket for this route class is empty")
		limited["headers"] = headerRef(append(rateHeaders, "Retry-After")...)
		responses := map[string]any{
			fmt.Sprint(rt.Status): map[string]any{"description": "success", "content": content([]string{rt.ResponseType}, resp),
				"headers": headerRef(rateHeaders...)},
			"400": errResp("invalid input; error.field names the field"),
			"401": errResp("missing or invalid token"),
			"403": errResp("insufficient scope or grants"),
			"429": limited,
			"500": errResp("internal error; error.request_id identifies it"),
		}
		if strings.Contains(rt.Path, "{id}") {
			responses["404"] = errResp("no such memory visible to the caller")
		}
		if strings.Contains(rt.Path, "{name}") {
			responses["404"] = errResp("no such entity visible to the caller")
		}
		if rt.Request != nil {
			responses["413"] = errResp("request body too large")
			responses["409"] = errResp("conflict with the memory's state or another memory")
		}
		op["responses"] = responses
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		item[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Coding Brain",
			"version":     version,
			"description": "A memory server for AI coding assistants. Health probes (/health/live, /health/ready, /health/deps) need no token.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"headers":         headers,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key (cb_<id>_<secret>)"}},
		},
	}, nil
}

// content describes a body of the given media types (application/json
// when none): JSON Lines carry one schema object per line, a zip is
// binary.
func content(types []string, schema map[string]any) map[string]any {
	out := map[string]any{}
	for _, t := range types {
		switch t {
		case "":
		case "application/zip":
			out[t] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		case "application/x-ndjson":
			out[t] = map[string]any{"schema": schema, "description": "one JSON object per line; the first line is the header ({\"format\":\"codingbrain-export\",\"version\":1,…}), then one line per memory as this schema describes"}
		default:
			out[t] = map[string]any{"schema": schema}
		}
	}
	if len(out) == 0 {
		out["application/json"] = map[string]any{"schema": schema}
	}
	return out
}

// pathParams lists the wildcards of a route's path, in order.
func pathParams(path string) []string {
	var names []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.Trim(seg, "{}"))
		}
	}
	return names
}

func schemaName(t reflect.Type) string {
	n := t.Name()
	return strings.ToUpper(n[:1]) + n[1:]
}

func operationID(rt Route) string {
	p := strings.NewReplacer("/api/v1/", "", "/{id}", "_by_id", "/", "_").Replace(rt.Path)
	return strings.ToLower(rt.Method) + "_" + p
}

var (
	openapiOnce sync.Once
	openapiDoc  map[string]any
	openapiErr  error
)

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	openapiOnce.Do(func() { openapiDoc, openapiErr = OpenAPI(s.opts.Version) })
	if openapiErr != nil {
		s.writeError(w, r, openapiErr)
		return
	}
	writeJSON(w, http.StatusOK, openapiDoc)
}
