package main

import (
	"context"
	"errors"
)

func runToken(ctx context.Context, args []string, e env) error { return errors.New("token: not yet") }
