package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
)

const healthcheckUsage = `Usage: codingbrain healthcheck [--url URL] [--timeout 3s]

Asks the local server whether it is ready (GET /health/ready) and exits 0
when it answers 200, 1 otherwise. It is the container image's HEALTHCHECK:
the image has no shell and no curl. The URL defaults to the port of
$CODINGBRAIN_ADDR (else 8765) on 127.0.0.1, or on the address's host when
it names one.

Flags:
`

func runHealthcheck(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, healthcheckUsage); fs.PrintDefaults() }
	target := fs.String("url", "", "readiness `URL` to ask (default http://127.0.0.1:PORT/health/ready)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "healthcheck: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *timeout <= 0 {
		return fmt.Errorf("healthcheck: --timeout %s: use a positive duration", *timeout)
	}
	u := *target
	if u == "" {
		var err error
		if u, err = readinessURL(firstNonEmpty(e.getenv("CODINGBRAIN_ADDR"), config.DefaultAddr)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: --url %q: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(e.stdout, "ready")
	return nil
}

// readinessURL is the readiness probe of a server listening on addr: the
// wildcard hosts (0.0.0.0, ::, none) are reached on 127.0.0.1.
func readinessURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("healthcheck: CODINGBRAIN_ADDR %q: use host:port, such as 0.0.0.0:8765", addr)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health/ready", nil
}
