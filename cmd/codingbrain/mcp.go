package main

import (
	"context"
	"errors"
)

// runMCP serves MCP over stdio. (Being written.)
func runMCP(ctx context.Context, args []string, e env) error { return errors.New("mcp: not yet") }
