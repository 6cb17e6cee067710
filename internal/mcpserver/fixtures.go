package mcpserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Conformance fixtures: the tools, prompts and resources that the official
// MCP conformance suite (@modelcontextprotocol/conformance) calls by name —
// test_simple_text, test_image_content, test_simple_prompt,
// test://static-text and the rest. They exist only when a Server is built
// with Options.ConformanceFixtures (`serve --conformance-fixtures`, which
// is refused off loopback), so that the suite can exercise every protocol
// feature against the real transports, authentication edge and session
// handling. They touch no memory and need no scope. The memory tools,
// resources and prompts are served beside them unchanged.
//
// The behaviour follows the suite's reference servers (the TypeScript
// everything-server and the Go SDK's conformance server).

// fixtureResources are the static fixture resources, listed on the first
// page of resources/list ahead of the memories.
var fixtureResources = []*mcp.Resource{
	{Name: "static-text", Description: "A static text resource for testing", MIMEType: "text/plain", URI: "test://static-text"},
	{Name: "static-binary", Description: "A static binary resource (image) for testing", MIMEType: "image/png", URI: "test://static-binary"},
	{Name: "watched-resource", Description: "A resource that clients may subscribe to", MIMEType: "text/plain", URI: "test://watched-resource"},
}

// Minimal media files, as in the suite's reference servers: a 1x1 red PNG
// and a silent WAV.
const (
	fixtureImageBase64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
	fixtureAudioBase64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
)

func fixtureImage() []byte {
	b, _ := base64.StdEncoding.DecodeString(fixtureImageBase64)
	return b
}

func fixtureAudio() []byte {
	b, _ := base64.StdEncoding.DecodeString(fixtureAudioBase64)
	return b
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// fixtures holds the key that seals the requestState of multi-round tool
// calls (SEP-2322), so that a client cannot tamper with it.
type fixtures struct {
	stateKey []byte
}

// addFixtures registers the conformance fixtures on s.
func (s *Server) addFixtures() {
	f := &fixtures{stateKey: make([]byte, 32)}
	_, _ = rand.Read(f.stateKey)
	srv := s.mcp

	tool := func(name, description string, h mcp.ToolHandlerFor[map[string]any, any]) {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: description}, h)
	}
	plain := func(fn func() *mcp.CallToolResult) mcp.ToolHandlerFor[map[string]any, any] {
		return func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			return fn(), nil, nil
		}
	}

	tool("test_simple_text", "Tests simple text content response", plain(func() *mcp.CallToolResult {
		return textResult("This is a simple text response for testing.")
	}))
	tool("test_image_content", "Tests image content response", plain(func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: fixtureImage(), MIMEType: "image/png"}}}
	}))
	tool("test_audio_content", "Tests audio content response", plain(func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: fixtureAudio(), MIMEType: "audio/wav"}}}
	}))
	tool("test_embedded_resource", "Tests embedded resource content response", plain(func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
			URI: "test://embedded-resource", MIMEType: "text/plain", Text: "This is an embedded resource",
		}}}}
	}))
	tool("test_multiple_content_types", "Tests response with multiple content types (text, image, resource)", plain(func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{
			&mcp.TextContent{Text: "This is text content"},
			&mcp.ImageContent{Data: fixtureImage(), MIMEType: "image/png"},
			&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
				URI: "test://embedded-in-multiple", MIMEType: "text/plain", Text: "This is an embedded resource",
			}},
		}}
	}))
	tool("test_tool_with_logging", "Tests tool that emits log messages during execution",
		func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			for _, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
				_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: msg})
			}
			return textResult("Tool with logging executed successfully"), nil, nil
		})
	tool("test_tool_with_progress", "Tests tool that reports progress notifications",
		func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for _, p := range []float64{0, 50, 100} {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: token, Progress: p, Total: 100, Message: fmt.Sprintf("Completed step %.0f of 100", p),
				})
			}
			return textResult(fmt.Sprint(token)), nil, nil
		})
	tool("test_error_handling", "Tests error response handling",
		func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New("this tool intentionally returns an error for testing")
		})
	tool("test_sampling", "Tests server-initiated sampling (LLM completion request)",
		func(ctx context.Context, req *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, any, error) {
			prompt, _ := in["prompt"].(string)
			res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
				Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: prompt}}},
				MaxTokens: 100,
			})
			if err != nil {
				return nil, nil, fmt.Errorf("sampling failed: %w", err)
			}
			text := "(non-text response)"
			if tc, ok := res.Content.(*mcp.TextContent); ok {
				text = tc.Text
			}
			return textResult("LLM response: " + text), nil, nil
		})
	elicit := func(message string, schema any) mcp.ToolHandlerFor[map[string]any, any] {
		return func(ctx context.Context, req *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, any, error) {
			if m, ok := in["message"].(string); ok && m != "" {
				message = m
			}
			res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: message, RequestedSchema: schema})
			if err != nil {
				return nil, nil, fmt.Errorf("elicitation failed: %w", err)
			}
			return textResult(fmt.Sprintf("Elicitation result: action=%s, content=%v", res.Action, res.Content)), nil, nil
		}
	}
	tool("test_elicitation", "Tests server-initiated elicitation (user input request)", elicit("Please provide your username",
		&jsonschema.Schema{Type: "object", Required: []string{"username"}, Properties: map[string]*jsonschema.Schema{
			"username": {Type: "string", Description: "Your preferred username"},
		}}))
	tool("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034", elicit("Test defaults for primitives",
		map[string]any{"type": "object", "properties": map[string]any{
			"name":     map[string]any{"type": "string", "description": "User name", "default": "John Doe"},
			"age":      map[string]any{"type": "integer", "description": "User age", "default": 30},
			"score":    map[string]any{"type": "number", "description": "User score", "default": 95.5},
			"status":   map[string]any{"type": "string", "description": "User status", "enum": []string{"active", "inactive", "pending"}, "default": "active"},
			"verified": map[string]any{"type": "boolean", "description": "Verification status", "default": true},
		}}))
	titled := []map[string]any{
		{"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"},
	}
	tool("test_elicitation_sep1330_enums", "Tests elicitation with enum schema improvements per SEP-1330", elicit("Test enum schemas",
		map[string]any{"type": "object", "properties": map[string]any{
			"untitledSingle": map[string]any{"type": "string", "enum": []string{"option1", "option2", "option3"}},
			"titledSingle":   map[string]any{"type": "string", "oneOf": titled},
			"legacyEnum":     map[string]any{"type": "string", "enum": []string{"opt1", "opt2", "opt3"}, "enumNames": []string{"Option One", "Option Two", "Option Three"}},
			"untitledMulti": map[string]any{"type": "array", "minItems": 1, "maxItems": 3,
				"items": map[string]any{"type": "string", "enum": []string{"option1", "option2", "option3"}}},
			"titledMulti": map[string]any{"type": "array", "minItems": 1, "maxItems": 3,
				"items": map[string]any{"type": "string", "anyOf": titled}},
		}}))
	srv.AddTool(&mcp.Tool{
		Name:        "json_schema_2020_12_tool",
		Description: "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)",
		InputSchema: json.RawMessage(jsonSchema202012),
	}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return textResult(fmt.Sprintf("JSON Schema 2020-12 tool called with: %s", req.Params.Arguments)), nil
	})
	tool("test_reconnection", "Tests SSE stream disconnection and client reconnection (SEP-1699)",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if req.Extra != nil && req.Extra.CloseSSEStream != nil {
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
			}
			return textResult("Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure."), nil, nil
		})
	srv.AddTool(&mcp.Tool{
		Name:        "test_x_mcp_header",
		Description: "Tests SEP-2243 Mcp-Param-* server-side validation",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","description":"mirrored into Mcp-Param-Region","x-mcp-header":"Region"},"level":{"type":"integer","description":"non-mirrored argument"}}}`),
	}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			Region string `json:"region"`
		}
		_ = json.Unmarshal(req.Params.Arguments, &in)
		return textResult("region=" + in.Region), nil
	})
	tool("test_missing_capability", "Requires the sampling client capability (SEP-2575)",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if caps := req.ClientCapabilities(); caps != nil && caps.Sampling != nil {
				return textResult("Client declared the sampling capability; tool executed."), nil, nil
			}
			data, _ := json.Marshal(mcp.MissingRequiredClientCapabilityData{
				RequiredCapabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}},
			})
			return nil, nil, &jsonrpc.Error{Code: mcp.CodeMissingRequiredClientCapabilities,
				Message: "sampling capability required but not declared by client", Data: data}
		})
	tool("test_streaming_elicitation", "Answers with result frames only, never independent requests (SEP-2575)", plain(func() *mcp.CallToolResult {
		return textResult("stream observed: result frames only, no top-level requests")
	}))
	tool("test_logging_tool", "Attempts to emit a log message; dropped unless the client set a log level (SEP-2575)",
		func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "test_logging_tool executed"})
			return textResult("Log attempted; framework gates on _meta.../logLevel."), nil, nil
		})
	tool("test_trigger_tool_change", "Re-registers a tool to publish notifications/tools/list_changed (SEP-2575)",
		func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			mcp.AddTool(srv, &mcp.Tool{Name: "__transient_tool_for_list_changed", Description: "Transient tool used to trigger tools/list_changed"},
				func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
					return &mcp.CallToolResult{}, nil, nil
				})
			return textResult("tools_list_changed published"), nil, nil
		})
	tool("test_trigger_prompt_change", "Re-registers a prompt to publish notifications/prompts/list_changed (SEP-2575)",
		func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			srv.AddPrompt(&mcp.Prompt{Name: "__transient_prompt_for_list_changed", Description: "Transient prompt used to trigger prompts/list_changed"},
				func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
					return &mcp.GetPromptResult{}, nil
				})
			return textResult("prompts_list_changed published"), nil, nil
		})
	f.addInputRequired(srv)
	f.addResources(srv)
	f.addPrompts(srv)
}

const jsonSchema202012 = `{
	"$schema": "https://json-schema.org/draft/2020-12/schema",
	"type": "object",
	"$defs": {
		"address": {
			"$anchor": "addressDef",
			"type": "object",
			"properties": {"street": {"type": "string"}, "city": {"type": "string"}}
		}
	},
	"properties": {
		"name": {"type": "string"},
		"address": {"$ref": "#/$defs/address"},
		"contactMethod": {"type": "string", "enum": ["phone", "email"]},
		"phone": {"type": "string"},
		"email": {"type": "string"}
	},
	"allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
	"if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
	"then": {"required": ["phone"]},
	"else": {"required": ["email"]},
	"additionalProperties": false
}`

// seal and open protect requestState with an HMAC, so that a client
// retrying a multi-round call cannot change what the server stored in it.
func (f *fixtures) seal(payload string) string {
	m := hmac.New(sha256.New, f.stateKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (f *fixtures) open(state string) (string, bool) {
	p, mac, ok := strings.Cut(state, ".")
	if !ok {
		return "", false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sum, err2 := base64.RawURLEncoding.DecodeString(mac)
	if err1 != nil || err2 != nil {
		return "", false
	}
	m := hmac.New(sha256.New, f.stateKey)
	m.Write(payload)
	if !hmac.Equal(sum, m.Sum(nil)) {
		return "", false
	}
	return string(payload), true
}

var errTamperedState = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid requestState: it was not issued by this server or was altered"}

func nameSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Required: []string{"name"}, Properties: map[string]*jsonschema.Schema{"name": {Type: "string"}}}
}

func confirmSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Required: []string{"ok"}, Properties: map[string]*jsonschema.Schema{"ok": {Type: "boolean"}}}
}

// accepted returns the content of an accepted elicitation response.
func accepted(responses mcp.InputResponseMap, key string) map[string]any {
	r, ok := responses[key].(*mcp.ElicitResult)
	if !ok || r == nil || r.Action != "accept" {
		return nil
	}
	return r.Content
}

func sampled(responses mcp.InputResponseMap, key string) (string, bool) {
	r, ok := responses[key].(*mcp.CreateMessageWithToolsResult)
	if !ok || r == nil {
		return "", false
	}
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			return tc.Text, true
		}
	}
	return "(non-text response)", true
}

// addInputRequired registers the multi-round-trip tools (SEP-2322): a call
// answers with input requests, and the client retries with the responses.
func (f *fixtures) addInputRequired(srv *mcp.Server) {
	type handler = mcp.ToolHandlerFor[map[string]any, any]
	add := func(name, description string, h handler) {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: description}, h)
	}
	greeting := func(text string) *mcp.CreateMessageParams {
		return &mcp.CreateMessageParams{Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: text}}}, MaxTokens: 50}
	}

	add("test_input_required_result_elicitation", "MRTR (SEP-2322): asks for the caller name via an in-band elicitation request",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if name, _ := accepted(req.Params.InputResponses, "user_name")["name"].(string); name != "" {
				return textResult("Hello, " + name + "!"), nil, nil
			}
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
				"user_name": &mcp.ElicitParams{Message: "What is your name?", RequestedSchema: nameSchema()},
			}}, nil, nil
		})
	add("test_input_required_result_sampling", "MRTR (SEP-2322): asks for an LLM completion via an in-band sampling request",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if text, ok := sampled(req.Params.InputResponses, "capital_question"); ok {
				return textResult("Sampling response: " + text), nil, nil
			}
			q := greeting("What is the capital of France?")
			q.MaxTokens = 100
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"capital_question": q}}, nil, nil
		})
	add("test_input_required_result_list_roots", "MRTR (SEP-2322): asks for the client roots via an in-band roots/list request",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if r, ok := req.Params.InputResponses["client_roots"].(*mcp.ListRootsResult); ok && r != nil {
				var uris []string
				for _, root := range r.Roots {
					uris = append(uris, root.URI)
				}
				return textResult(fmt.Sprintf("Client exposed %d root(s): %s", len(r.Roots), strings.Join(uris, ", "))), nil, nil
			}
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"client_roots": &mcp.ListRootsParams{}}}, nil, nil
		})
	stateful := func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
		if st := req.Params.RequestState; st != "" {
			if _, ok := f.open(st); !ok {
				return nil, nil, errTamperedState
			}
			if accepted(req.Params.InputResponses, "confirm") != nil {
				return textResult("state-ok: requestState received and confirmation accepted"), nil, nil
			}
		}
		return &mcp.CallToolResult{
			InputRequests: mcp.InputRequestMap{"confirm": &mcp.ElicitParams{Message: "Please confirm", RequestedSchema: confirmSchema()}},
			RequestState:  f.seal("confirm"),
		}, nil, nil
	}
	add("test_input_required_result_request_state", "MRTR (SEP-2322): round-trips integrity-protected requestState alongside an elicitation request", stateful)
	add("test_input_required_result_tampered_state", "MRTR (SEP-2322): rejects retries whose requestState fails integrity verification", stateful)
	add("test_input_required_result_multiple_inputs", "MRTR (SEP-2322): asks for elicitation, sampling and roots input in a single round",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			in := req.Params.InputResponses
			name, _ := accepted(in, "user_name")["name"].(string)
			text, hasGreeting := sampled(in, "greeting")
			roots, hasRoots := in["client_roots"].(*mcp.ListRootsResult)
			if name != "" && hasGreeting && hasRoots && roots != nil {
				return textResult(fmt.Sprintf("%s %s — %d root(s) visible", text, name, len(roots.Roots))), nil, nil
			}
			return &mcp.CallToolResult{
				InputRequests: mcp.InputRequestMap{
					"user_name":    &mcp.ElicitParams{Message: "What is your name?", RequestedSchema: nameSchema()},
					"greeting":     greeting("Generate a greeting"),
					"client_roots": &mcp.ListRootsParams{},
				},
				RequestState: f.seal("multiple_inputs"),
			}, nil, nil
		})
	add("test_input_required_result_multi_round", "MRTR (SEP-2322): two elicitation rounds with evolving requestState before completing",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			state := ""
			if st := req.Params.RequestState; st != "" {
				var ok bool
				if state, ok = f.open(st); !ok {
					return nil, nil, errTamperedState
				}
			}
			switch {
			case state == "":
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{"step1": &mcp.ElicitParams{Message: "Step 1: What is your name?", RequestedSchema: nameSchema()}},
					RequestState:  f.seal("round=1"),
				}, nil, nil
			case state == "round=1":
				name, _ := accepted(req.Params.InputResponses, "step1")["name"].(string)
				if name == "" {
					name = "unknown"
				}
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{"step2": &mcp.ElicitParams{
						Message: "Step 2: What is your favorite color?",
						RequestedSchema: &jsonschema.Schema{Type: "object", Required: []string{"color"},
							Properties: map[string]*jsonschema.Schema{"color": {Type: "string"}}},
					}},
					RequestState: f.seal("round=2;name=" + name),
				}, nil, nil
			default:
				color, _ := accepted(req.Params.InputResponses, "step2")["color"].(string)
				if color == "" {
					color = "unknown"
				}
				return textResult(fmt.Sprintf("Multi-round complete: %s likes %s", strings.TrimPrefix(state, "round=2;name="), color)), nil, nil
			}
		})
	add("test_input_required_result_capabilities", "MRTR (SEP-2322): only requests input kinds the declared client capabilities cover",
		func(_ context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if len(req.Params.InputResponses) > 0 {
				return textResult("Capability-aware input requests fulfilled"), nil, nil
			}
			caps := req.ClientCapabilities()
			reqs := mcp.InputRequestMap{}
			if caps != nil && caps.Elicitation != nil {
				reqs["user_name"] = &mcp.ElicitParams{Message: "What is your name?", RequestedSchema: nameSchema()}
			}
			if caps != nil && caps.Sampling != nil {
				reqs["greeting"] = greeting("Generate a short greeting")
			}
			if caps != nil && (caps.RootsV2 != nil || caps.Roots.ListChanged) {
				reqs["client_roots"] = &mcp.ListRootsParams{}
			}
			if len(reqs) == 0 {
				return textResult("No declared client capability supports an in-band input request"), nil, nil
			}
			return &mcp.CallToolResult{InputRequests: reqs}, nil, nil
		})
}

func (f *fixtures) addResources(srv *mcp.Server) {
	text := func(uri, mime, body string) *mcp.ReadResourceResult {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Text: body}}}
	}
	srv.AddResource(fixtureResources[0], func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return text(req.Params.URI, "text/plain", "This is the content of the static text resource."), nil
	})
	srv.AddResource(fixtureResources[1], func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "image/png", Blob: fixtureImage()}}}, nil
	})
	srv.AddResource(fixtureResources[2], func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return text(req.Params.URI, "text/plain", "Watched resource content"), nil
	})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{
		Name: "template", Description: "A resource template with parameter substitution",
		MIMEType: "application/json", URITemplate: "test://template/{id}/data",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		id := strings.TrimSuffix(strings.TrimPrefix(req.Params.URI, "test://template/"), "/data")
		body, _ := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
		return text(req.Params.URI, "application/json", string(body)), nil
	})
}

func (f *fixtures) addPrompts(srv *mcp.Server) {
	user := func(c mcp.Content) *mcp.PromptMessage { return &mcp.PromptMessage{Role: "user", Content: c} }
	srv.AddPrompt(&mcp.Prompt{Name: "test_simple_prompt", Title: "Simple Test Prompt", Description: "A simple prompt without arguments"},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: "A simple test prompt",
				Messages: []*mcp.PromptMessage{user(&mcp.TextContent{Text: "This is a simple prompt for testing."})}}, nil
		})
	srv.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_arguments", Title: "Prompt With Arguments", Description: "A prompt with required arguments",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			a := req.Params.Arguments
			return &mcp.GetPromptResult{Description: "A prompt with arguments", Messages: []*mcp.PromptMessage{
				user(&mcp.TextContent{Text: fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", a["arg1"], a["arg2"])}),
			}}, nil
		})
	srv.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_embedded_resource", Title: "Prompt With Embedded Resource",
		Description: "A prompt that includes an embedded resource",
		Arguments:   []*mcp.PromptArgument{{Name: "resourceUri", Description: "URI of the resource to embed", Required: true}}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: "A prompt with an embedded resource", Messages: []*mcp.PromptMessage{
				user(&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: req.Params.Arguments["resourceUri"], MIMEType: "text/plain", Text: "Embedded resource content for testing."}}),
				user(&mcp.TextContent{Text: "Please process the embedded resource above."}),
			}}, nil
		})
	srv.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_image", Title: "Prompt With Image", Description: "A prompt that includes image content"},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: "A prompt with an image", Messages: []*mcp.PromptMessage{
				user(&mcp.ImageContent{Data: fixtureImage(), MIMEType: "image/png"}),
				user(&mcp.TextContent{Text: "Please analyze the image above."}),
			}}, nil
		})
	srv.AddPrompt(&mcp.Prompt{Name: "test_input_required_result_prompt", Description: "MRTR (SEP-2322): asks for context via an in-band elicitation request"},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			if c := accepted(req.Params.InputResponses, "user_context"); c != nil {
				s, _ := c["context"].(string)
				return &mcp.GetPromptResult{Description: "A prompt with elicited context",
					Messages: []*mcp.PromptMessage{user(&mcp.TextContent{Text: "Context: " + s})}}, nil
			}
			return &mcp.GetPromptResult{InputRequests: mcp.InputRequestMap{"user_context": &mcp.ElicitParams{
				Message: "Please provide context for the prompt",
				RequestedSchema: &jsonschema.Schema{Type: "object", Required: []string{"context"},
					Properties: map[string]*jsonschema.Schema{"context": {Type: "string"}}},
			}}}, nil
		})
}
