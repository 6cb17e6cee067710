package main

import (
	"context"
	"errors"
)

// runMemory is the REST client CLI. (Being written.)
func runMemory(ctx context.Context, args []string, e env) error { return errors.New("memory: not yet") }
