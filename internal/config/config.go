// Package config holds the server's configuration: defaults in code, then an
// optional JSON file, then CODINGBRAIN_* environment variables, then flags.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is everything `codingbrain serve` can be told.
type Config struct {
	Addr         string        `json:"addr"`
	DataDir      string        `json:"data_dir"`
	MaxBodyBytes int64         `json:"max_body_bytes"`
	Issuer       string        `json:"issuer"`
	Audience     string        `json:"audience"`
	PublicURL    string        `json:"public_url"`
	ShutdownWait time.Duration `json:"shutdown_wait"`
	LogFormat    string        `json:"log_format"`
	LogLevel     string        `json:"log_level"`
	// InsecureNoAuth serves every request as a local development principal.
	// It is refused unless Addr is a loopback address.
	InsecureNoAuth bool `json:"insecure_no_auth"`
}

// Defaults for a single developer on one machine.
const (
	DefaultAddr     = "127.0.0.1:8765"
	DefaultIssuer   = "codingbrain-local"
	DefaultAudience = "codingbrain"
)

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		Addr:         DefaultAddr,
		DataDir:      defaultDataDir(),
		MaxBodyBytes: 1 << 20,
		Issuer:       DefaultIssuer,
		Audience:     DefaultAudience,
		ShutdownWait: 15 * time.Second,
		LogFormat:    "json",
		LogLevel:     "info",
	}
}

func defaultDataDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "codingbrain")
	}
	return "codingbrain-data"
}

// Load builds a Config from defaults, the file named by --config or
// CODINGBRAIN_CONFIG, the environment, and args (flags), in that order.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	file := fs.String("config", getenv("CODINGBRAIN_CONFIG"), "JSON config file")
	addr := fs.String("addr", "", "listen address (default "+DefaultAddr+")")
	dataDir := fs.String("data-dir", "", "data directory")
	noAuth := fs.Bool("insecure-dev-no-auth", false, "serve without authentication (loopback only, development)")
	logFormat := fs.String("log-format", "", "json or text")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			return c, fmt.Errorf("parse config %s: %w", *file, err)
		}
	}
	var errs []error
	env := func(name string, apply func(string) error) {
		if v := getenv("CODINGBRAIN_" + name); v != "" {
			if err := apply(v); err != nil {
				errs = append(errs, fmt.Errorf("CODINGBRAIN_%s: %w", name, err))
			}
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	env("ADDR", str(&c.Addr))
	env("DATA_DIR", str(&c.DataDir))
	env("ISSUER", str(&c.Issuer))
	env("AUDIENCE", str(&c.Audience))
	env("PUBLIC_URL", str(&c.PublicURL))
	env("LOG_FORMAT", str(&c.LogFormat))
	env("LOG_LEVEL", str(&c.LogLevel))
	env("MAX_BODY_BYTES", func(v string) (err error) { c.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); return err })
	env("SHUTDOWN_WAIT", func(v string) (err error) { c.ShutdownWait, err = time.ParseDuration(v); return err })
	env("INSECURE_DEV_NO_AUTH", func(v string) (err error) { c.InsecureNoAuth, err = strconv.ParseBool(v); return err })
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if *addr != "" {
		c.Addr = *addr
	}
	if *dataDir != "" {
		c.DataDir = *dataDir
	}
	if *noAuth {
		c.InsecureNoAuth = true
	}
	if *logFormat != "" {
		c.LogFormat = *logFormat
	}
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_body_bytes %d: must be at least 1024", c.MaxBodyBytes))
	}
	if c.Issuer == "" || c.Audience == "" {
		errs = append(errs, errors.New("issuer and audience are required"))
	}
	if c.ShutdownWait <= 0 {
		errs = append(errs, errors.New("shutdown_wait must be positive"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log_format %q: use json or text", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: use debug, info, warn or error", c.LogLevel))
	}
	if c.InsecureNoAuth && err == nil && !IsLoopback(host) {
		errs = append(errs, fmt.Errorf("insecure_no_auth: refused on %q; it works only on a loopback address", c.Addr))
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether host names only the local machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String prints the config for logs. It holds no secrets today; any added
// later must be masked here.
func (c Config) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}
