// Package config holds the server's configuration: defaults in code, then an
// optional JSON file, then CODINGBRAIN_* environment variables, then flags.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/schedule"
)

// Config is everything `codingbrain serve` can be told.
type Config struct {
	Addr         string `json:"addr"`
	DataDir      string `json:"data_dir"`
	MaxBodyBytes int64  `json:"max_body_bytes"`
	Issuer       string `json:"issuer"`
	// Audience is the aud every token must carry. Empty means this
	// server's resource URI, PublicURL + "/mcp" (RFC 8707).
	Audience string `json:"audience"`
	// PublicURL is the base URL clients reach the server at. It names the
	// resource in tokens and metadata and is the base of DPoP's htu. It is
	// required on a non-loopback address; on loopback it defaults to
	// http://<addr>.
	PublicURL string `json:"public_url"`
	// JWKSURL, when set, also accepts RS256/ES256/EdDSA tokens signed by a
	// key in the JSON Web Key Set there (an identity provider's), refreshed
	// every JWKSRefresh and at once when a token names an unknown kid.
	JWKSURL     string        `json:"jwks_url"`
	JWKSRefresh time.Duration `json:"jwks_refresh"`
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to
	// call the API and MCP endpoints. None by default; "*" is refused.
	CORSOrigins []string `json:"cors_origins"`
	// TokenLeeway is the clock skew tolerated on exp, nbf and iat.
	TokenLeeway  time.Duration `json:"token_leeway"`
	ShutdownWait time.Duration `json:"shutdown_wait"`
	// LogFormat is json, text, or auto (the default: text when stderr is
	// a terminal, else json).
	LogFormat string `json:"log_format"`
	LogLevel  string `json:"log_level"`
	// MetricsAddr, when set, is a second listener serving /metrics and
	// /debug/pprof/ without authentication, for the internal network
	// (Prometheus, profiling). The main listener serves /metrics only to
	// tokens with scope metrics:read.
	MetricsAddr string `json:"metrics_addr"`
	// InsecureNoAuth serves every request as a local development principal.
	// It is refused unless Addr is a loopback address.
	InsecureNoAuth bool `json:"insecure_no_auth"`

	// DatabaseURL, when set, puts memories in PostgreSQL (a postgres:// URL
	// or libpq key=value string) instead of the SQLite file in DataDir.
	DatabaseURL string `json:"database_url"`
	// DBMaxConns caps the PostgreSQL pool; 0 keeps pgxpool's default.
	DBMaxConns int `json:"db_max_conns"`
	// DBConnectTimeout bounds dialling one PostgreSQL connection; 0 keeps
	// the URL's connect_timeout, if any.
	DBConnectTimeout time.Duration `json:"db_connect_timeout"`
	// DBStatementTimeout is every PostgreSQL session's statement_timeout;
	// 0 leaves the server's own setting (none, unless the server sets one).
	DBStatementTimeout time.Duration `json:"db_statement_timeout"`
	// ReplicaURLs are PostgreSQL streaming replicas of DatabaseURL: reads
	// go to one that is healthy, within ReplicaMaxLag and has replayed the
	// caller's last write (docs/scaling.md).
	ReplicaURLs []string `json:"replica_urls,omitempty"`
	// ReplicaMaxLag is the replay lag above which a replica gets no reads
	// (default 5s).
	ReplicaMaxLag time.Duration `json:"replica_max_lag"`
	// ValkeyURL, when set, keeps the state replicas share (MCP session
	// bindings) in Valkey or Redis instead of in process.
	ValkeyURL string `json:"valkey_url"`
	// Migrate applies pending schema migrations at start. Without it serve
	// refuses a schema that is behind the binary (see serve -h).
	Migrate bool `json:"migrate"`

	// Embedder computes the vectors of semantic search: "builtin" (the
	// default: offline, no model to download) or "openai", an
	// OpenAI-compatible API at EmbedderURL (OpenAI, Ollama /v1, vLLM,
	// LM Studio, TEI) serving EmbedderModel.
	Embedder      string `json:"embedder"`
	EmbedderURL   string `json:"embedder_url"`
	EmbedderModel string `json:"embedder_model"`
	// EmbedderAPIKeyEnv names the environment variable that holds the
	// API key. The key itself is never part of the configuration.
	EmbedderAPIKeyEnv string        `json:"embedder_api_key_env"`
	EmbedderTimeout   time.Duration `json:"embedder_timeout"`
	// EmbedderBatch is how many texts go in one embedding request.
	EmbedderBatch int `json:"embedder_batch"`
	// SearchRanking tunes hybrid search and near-duplicate detection:
	// comma-separated name=value settings over memory.DefaultRanking, e.g.
	// "vector=1,half_life=4380h,near_duplicate=0.95" (memory.ParseRanking
	// names them all).
	SearchRanking string `json:"search_ranking"`

	// RateLimits sets the per-principal rate limits of the route classes
	// (read, write, search, admin, mcp) over the defaults: comma-separated
	// class=N (per minute) or class=N/duration, 0 for no limit, e.g.
	// "read=1200,search=100/10s,admin=0" (httpapi.ParseRateLimits).
	RateLimits string `json:"rate_limits"`
	// TrustedProxies are the CIDRs (or addresses) of reverse proxies whose
	// X-Forwarded-For and X-Real-IP name the client. None by default: the
	// peer address is the client.
	TrustedProxies []string `json:"trusted_proxies"`
	// ShutdownDelay is how long, on SIGTERM, readiness fails and new work
	// is refused before the listener closes, so that load balancers stop
	// sending requests; then in-flight requests and streams get
	// ShutdownWait to finish.
	ShutdownDelay time.Duration `json:"shutdown_delay"`

	// GDPRSharedMemories is what erasing a subject does with the memories
	// they wrote that others can see: "pseudonymize" (the default: kept,
	// with the subject replaced by a stable pseudonym) or "delete".
	GDPRSharedMemories string `json:"gdpr_shared_memories"`
	// GDPRLedgerFile, when set, is a file every erasure's ledger entry is
	// also appended to: erasure-ledger.jsonl in the backup directory, so
	// that restoring a backup taken before an erasure erases again. Empty
	// means that file in BackupDir, when BackupDir is set.
	GDPRLedgerFile string `json:"gdpr_ledger_file"`
	// RetentionEvery is how often serve applies the orgs' retention
	// policies (default 1h; 0 never).
	RetentionEvery time.Duration `json:"retention_every"`

	// BackupDir is where serve's scheduled backups are written and
	// verified from (a mounted volume or network file system).
	BackupDir string `json:"backup_dir"`
	// BackupSchedule and BackupVerifySchedule are cron expressions (five
	// fields, or @daily, @every 6h; UTC) for serve's scheduled backup and
	// restore verification; empty is not scheduled. With several replicas
	// one runs each occurrence (claimed in Valkey).
	BackupSchedule       string `json:"backup_schedule"`
	BackupVerifySchedule string `json:"backup_verify_schedule"`
	// BackupKeepDaily and BackupKeepWeekly prune the backup directory
	// after each scheduled backup: the newest backup of each of the last
	// N days and M ISO weeks that have one are kept (0 and 0: no pruning).
	BackupKeepDaily  int `json:"backup_keep_daily"`
	BackupKeepWeekly int `json:"backup_keep_weekly"`
	// BackupRecipients encrypt scheduled backups (age X25519 public keys,
	// age1…); BackupIdentityFile holds a private key the scheduled
	// verification decrypts with.
	BackupRecipients   []string `json:"backup_recipients"`
	BackupIdentityFile string   `json:"backup_identity_file"`
	// BackupWebhook is POSTed an alert (Slack and Alertmanager compatible
	// JSON) when a scheduled verification fails. It is a secret (such URLs
	// carry a token) and is masked when the configuration is printed.
	BackupWebhook string `json:"backup_webhook"`

	// TierSchedule is the cron expression of serve's tiering job, which
	// moves archived and deleted memories, and memories untouched (neither
	// written nor returned to a reader) for TierAfterDays days, to the cold
	// tier (docs/scaling.md); empty (the default) never runs it. With
	// several replicas one runs each occurrence.
	TierSchedule  string `json:"tier_schedule"`
	TierAfterDays int    `json:"tier_after_days"`

	// embedderAPIKey is the value of $EmbedderAPIKeyEnv (ReadEmbedderAPIKey).
	embedderAPIKey string
}

// Embedders are the values of embedder.
var Embedders = []string{"builtin", "openai"}

// DefaultEmbedderAPIKeyEnv is the variable the embedder's API key is read
// from unless embedder_api_key_env names another.
const DefaultEmbedderAPIKeyEnv = "CODINGBRAIN_EMBEDDER_API_KEY"

// ReadEmbedderAPIKey reads the embedder's API key from the environment
// variable EmbedderAPIKeyEnv names. Load does it; commands that build a
// Config otherwise call it.
func (c *Config) ReadEmbedderAPIKey(getenv func(string) string) {
	if c.EmbedderAPIKeyEnv != "" {
		c.embedderAPIKey = getenv(c.EmbedderAPIKeyEnv)
	}
}

// EmbedderAPIKey is the key ReadEmbedderAPIKey read, or "".
func (c Config) EmbedderAPIKey() string { return c.embedderAPIKey }

// Defaults for a single developer on one machine.
const (
	DefaultAddr   = "127.0.0.1:8765"
	DefaultIssuer = "codingbrain-local"
)

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		Addr:         DefaultAddr,
		DataDir:      defaultDataDir(),
		MaxBodyBytes: 1 << 20,
		Issuer:       DefaultIssuer,
		JWKSRefresh:  5 * time.Minute,
		TokenLeeway:  30 * time.Second,
		ShutdownWait: 15 * time.Second,
		LogFormat:    "auto",
		LogLevel:     "info",

		DBConnectTimeout:   5 * time.Second,
		DBStatementTimeout: 30 * time.Second,

		Embedder:          "builtin",
		EmbedderAPIKeyEnv: DefaultEmbedderAPIKeyEnv,
		EmbedderTimeout:   10 * time.Second,
		EmbedderBatch:     64,

		GDPRSharedMemories: "pseudonymize",
		RetentionEvery:     time.Hour,
		BackupKeepDaily:    7,
		BackupKeepWeekly:   4,
		TierAfterDays:      90,
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
	return LoadWith(args, getenv, nil)
}

// LoadWith is Load for a command that has flags of its own besides the
// serve flags: extra defines them on the flag set before parsing.
func LoadWith(args []string, getenv func(string) string, extra func(*flag.FlagSet)) (Config, error) {
	c := Default()
	fs, f := newFlagSet(getenv)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return c, err // flag.ErrHelp for -h: the caller prints Usage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *f.file != "" {
		b, err := os.ReadFile(*f.file)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			return c, fmt.Errorf("parse config %s: %w", *f.file, err)
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
	env("JWKS_URL", str(&c.JWKSURL))
	env("CORS_ORIGINS", func(v string) error { c.CORSOrigins = splitList(v); return nil })
	env("JWKS_REFRESH", func(v string) (err error) { c.JWKSRefresh, err = time.ParseDuration(v); return err })
	env("TOKEN_LEEWAY", func(v string) (err error) { c.TokenLeeway, err = time.ParseDuration(v); return err })
	env("LOG_FORMAT", str(&c.LogFormat))
	env("LOG_LEVEL", str(&c.LogLevel))
	env("METRICS_ADDR", str(&c.MetricsAddr))
	env("MAX_BODY_BYTES", func(v string) (err error) { c.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); return err })
	env("SHUTDOWN_WAIT", func(v string) (err error) { c.ShutdownWait, err = time.ParseDuration(v); return err })
	env("INSECURE_DEV_NO_AUTH", func(v string) (err error) { c.InsecureNoAuth, err = strconv.ParseBool(v); return err })
	env("DATABASE_URL", str(&c.DatabaseURL))
	env("DB_MAX_CONNS", func(v string) (err error) { c.DBMaxConns, err = strconv.Atoi(v); return err })
	env("DB_CONNECT_TIMEOUT", func(v string) (err error) { c.DBConnectTimeout, err = time.ParseDuration(v); return err })
	env("DB_STATEMENT_TIMEOUT", func(v string) (err error) { c.DBStatementTimeout, err = time.ParseDuration(v); return err })
	env("VALKEY_URL", str(&c.ValkeyURL))
	env("REPLICA_URLS", func(v string) error { c.ReplicaURLs = splitList(v); return nil })
	env("REPLICA_MAX_LAG", func(v string) (err error) { c.ReplicaMaxLag, err = time.ParseDuration(v); return err })
	env("MIGRATE", func(v string) (err error) { c.Migrate, err = strconv.ParseBool(v); return err })
	env("EMBEDDER", str(&c.Embedder))
	env("EMBEDDER_URL", str(&c.EmbedderURL))
	env("EMBEDDER_MODEL", str(&c.EmbedderModel))
	env("EMBEDDER_API_KEY_ENV", str(&c.EmbedderAPIKeyEnv))
	env("EMBEDDER_TIMEOUT", func(v string) (err error) { c.EmbedderTimeout, err = time.ParseDuration(v); return err })
	env("EMBEDDER_BATCH", func(v string) (err error) { c.EmbedderBatch, err = strconv.Atoi(v); return err })
	env("SEARCH_RANKING", str(&c.SearchRanking))
	env("RATE_LIMITS", str(&c.RateLimits))
	env("TRUSTED_PROXIES", func(v string) error { c.TrustedProxies = splitList(v); return nil })
	env("SHUTDOWN_DELAY", func(v string) (err error) { c.ShutdownDelay, err = time.ParseDuration(v); return err })
	env("GDPR_SHARED_MEMORIES", str(&c.GDPRSharedMemories))
	env("GDPR_LEDGER_FILE", str(&c.GDPRLedgerFile))
	env("RETENTION_EVERY", func(v string) (err error) { c.RetentionEvery, err = time.ParseDuration(v); return err })
	env("BACKUP_DIR", str(&c.BackupDir))
	env("BACKUP_SCHEDULE", str(&c.BackupSchedule))
	env("BACKUP_VERIFY_SCHEDULE", str(&c.BackupVerifySchedule))
	env("BACKUP_KEEP_DAILY", func(v string) (err error) { c.BackupKeepDaily, err = strconv.Atoi(v); return err })
	env("BACKUP_KEEP_WEEKLY", func(v string) (err error) { c.BackupKeepWeekly, err = strconv.Atoi(v); return err })
	env("BACKUP_RECIPIENTS", func(v string) error { c.BackupRecipients = splitList(v); return nil })
	env("BACKUP_IDENTITY_FILE", str(&c.BackupIdentityFile))
	env("BACKUP_WEBHOOK", str(&c.BackupWebhook))
	env("TIER_SCHEDULE", str(&c.TierSchedule))
	env("TIER_AFTER_DAYS", func(v string) (err error) { c.TierAfterDays, err = strconv.Atoi(v); return err })
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if *f.addr != "" {
		c.Addr = *f.addr
	}
	if *f.dataDir != "" {
		c.DataDir = *f.dataDir
	}
	if *f.noAuth {
		c.InsecureNoAuth = true
	}
	if *f.logFormat != "" {
		c.LogFormat = *f.logFormat
	}
	if *f.logLevel != "" {
		c.LogLevel = *f.logLevel
	}
	// These flags apply whenever they are given, even with a zero value
	// (--db-statement-timeout 0, --migrate=false).
	fs.Visit(func(fl *flag.Flag) {
		switch v := &f.given; fl.Name {
		case "database-url":
			c.DatabaseURL = v.DatabaseURL
		case "db-max-conns":
			c.DBMaxConns = v.DBMaxConns
		case "db-connect-timeout":
			c.DBConnectTimeout = v.DBConnectTimeout
		case "db-statement-timeout":
			c.DBStatementTimeout = v.DBStatementTimeout
		case "valkey-url":
			c.ValkeyURL = v.ValkeyURL
		case "replica-url":
			c.ReplicaURLs = v.ReplicaURLs
		case "replica-max-lag":
			c.ReplicaMaxLag = v.ReplicaMaxLag
		case "migrate":
			c.Migrate = v.Migrate
		case "embedder":
			c.Embedder = v.Embedder
		case "embedder-url":
			c.EmbedderURL = v.EmbedderURL
		case "embedder-model":
			c.EmbedderModel = v.EmbedderModel
		case "embedder-api-key-env":
			c.EmbedderAPIKeyEnv = v.EmbedderAPIKeyEnv
		case "embedder-timeout":
			c.EmbedderTimeout = v.EmbedderTimeout
		case "embedder-batch":
			c.EmbedderBatch = v.EmbedderBatch
		case "search-ranking":
			c.SearchRanking = v.SearchRanking
		case "metrics-addr":
			c.MetricsAddr = v.MetricsAddr
		case "public-url":
			c.PublicURL = v.PublicURL
		case "jwks-url":
			c.JWKSURL = v.JWKSURL
		case "cors-origins":
			c.CORSOrigins = splitList(*f.corsOrigins)
		case "rate-limits":
			c.RateLimits = v.RateLimits
		case "trusted-proxies":
			c.TrustedProxies = splitList(*f.trustedProxies)
		case "shutdown-wait":
			c.ShutdownWait = v.ShutdownWait
		case "shutdown-delay":
			c.ShutdownDelay = v.ShutdownDelay
		case "gdpr-shared-memories":
			c.GDPRSharedMemories = v.GDPRSharedMemories
		case "gdpr-ledger-file":
			c.GDPRLedgerFile = v.GDPRLedgerFile
		case "retention-every":
			c.RetentionEvery = v.RetentionEvery
		case "backup-dir":
			c.BackupDir = v.BackupDir
		case "backup-schedule":
			c.BackupSchedule = v.BackupSchedule
		case "backup-verify-schedule":
			c.BackupVerifySchedule = v.BackupVerifySchedule
		case "tier-schedule":
			c.TierSchedule = v.TierSchedule
		case "tier-after-days":
			c.TierAfterDays = v.TierAfterDays
		}
	})
	c.ReadEmbedderAPIKey(getenv)
	return c, c.Validate()
}

// flagValues are the serve flags as parsed. given holds the values of the
// flags that apply whenever given, even with a zero value.
type flagValues struct {
	file, addr, dataDir, logFormat *string
	logLevel                       *string
	corsOrigins, trustedProxies    *string
	noAuth                         *bool
	given                          Config
}

func newFlagSet(getenv func(string) string) (*flag.FlagSet, *flagValues) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	f := &flagValues{}
	f.file = fs.String("config", getenv("CODINGBRAIN_CONFIG"), "JSON config file")
	f.addr = fs.String("addr", "", "listen address (default "+DefaultAddr+")")
	f.dataDir = fs.String("data-dir", "", "data directory: signing key and, without --database-url, the SQLite database")
	f.noAuth = fs.Bool("insecure-dev-no-auth", false, "serve without authentication (loopback only, development)")
	f.logFormat = fs.String("log-format", "", "json, text, or auto (default: text on a terminal, else json)")
	fs.StringVar(&f.given.MetricsAddr, "metrics-addr", "", "also serve /metrics and /debug/pprof/ WITHOUT authentication on this `address`\n"+
		"(host:port), for the internal network only; the main address serves /metrics to metrics:read tokens")
	f.logLevel = fs.String("log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&f.given.DatabaseURL, "database-url", "", "PostgreSQL `URL` (postgres://user:password@host:port/db); when set, memories live there\n"+
		"instead of the SQLite file in the data dir")
	fs.IntVar(&f.given.DBMaxConns, "db-max-conns", 0, "PostgreSQL pool size (0: pgxpool's default, the larger of 4 and the CPUs)")
	fs.DurationVar(&f.given.DBConnectTimeout, "db-connect-timeout", 0, "PostgreSQL dial timeout (default 5s)")
	fs.DurationVar(&f.given.DBStatementTimeout, "db-statement-timeout", 0, "PostgreSQL statement_timeout (default 30s; 0 leaves the server's setting)")
	fs.Func("replica-url", "a PostgreSQL streaming replica's `URL` (repeatable): reads go to replicas that are healthy and\n"+
		"have the caller's last write, writes to --database-url", func(v string) error {
		f.given.ReplicaURLs = append(f.given.ReplicaURLs, v)
		return nil
	})
	fs.DurationVar(&f.given.ReplicaMaxLag, "replica-max-lag", 0, "replay lag above which a replica gets no reads (default 5s)")
	fs.StringVar(&f.given.ValkeyURL, "valkey-url", "", "Valkey/Redis `URL` (redis://[:password@]host:port/db, rediss:// for TLS) for the state\n"+
		"replicas share, such as MCP sessions (default: in process, one replica)")
	fs.StringVar(&f.given.PublicURL, "public-url", "", "base `URL` clients reach this server at (https://brain.example.com); required on a\n"+
		"non-loopback address. Tokens must carry aud = this + /mcp unless audience is set")
	fs.StringVar(&f.given.JWKSURL, "jwks-url", "", "also accept RS256/ES256/EdDSA tokens signed by a key of the JWKS at this `URL`\n"+
		"(an identity provider's); the local HS256 key keeps working")
	f.corsOrigins = fs.String("cors-origins", "", "comma-separated browser `origins` (https://console.example) allowed to call the API")
	EmbedderFlags(fs, &f.given)
	fs.StringVar(&f.given.RateLimits, "rate-limits", "", "per-principal rate limits over the defaults (read=600, write=240, search=300,\n"+
		"admin=60, mcp=600 per minute): comma-separated class=N per minute or class=N/duration, 0 for\n"+
		"no limit, e.g. read=1200,search=100/10s. Shared by replicas through valkey_url")
	f.trustedProxies = fs.String("trusted-proxies", "", "comma-separated `CIDRs` of reverse proxies whose X-Forwarded-For names the client\n"+
		"(10.0.0.0/8,fd00::/8); without it the peer address is the client")
	fs.DurationVar(&f.given.ShutdownWait, "shutdown-wait", 0, "on SIGTERM, how long in-flight requests and streams get to finish (default 15s)")
	fs.DurationVar(&f.given.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long readiness fails and new requests get 503 before the listener\n"+
		"closes, for load balancers to notice (default 0s; a few seconds behind one)")
	fs.StringVar(&f.given.SearchRanking, "search-ranking", "", "hybrid search tuning: comma-separated `settings` such as vector=1,half_life=4380h,near_duplicate=0.95\n"+
		"over the defaults (k, lexical, vector, graph, candidates, min_similarity, entity, artifact, category,\n"+
		"scope, tag, half_life, recency, superseded, near_duplicate, graph_budget; see docs/design.md)")
	fs.BoolVar(&f.given.Migrate, "migrate", false, "apply pending schema migrations at start. Without it serve refuses to start on a\n"+
		"schema that is behind this binary (run codingbrain migrate up first); a new, empty\n"+
		"SQLite database is the exception and is always initialised. A schema ahead of the\n"+
		"binary is accepted with a warning. On PostgreSQL, replicas starting together with\n"+
		"--migrate apply each migration once (advisory lock)")
	fs.StringVar(&f.given.GDPRSharedMemories, "gdpr-shared-memories", "", "erasing a subject: pseudonymize (default) or delete the memories they wrote\n"+
		"that others can see")
	fs.StringVar(&f.given.GDPRLedgerFile, "gdpr-ledger-file", "", "also append every erasure's ledger entry to this `file` (default: erasure-ledger.jsonl\n"+
		"in backup_dir, when set), so that restoring an older backup erases again")
	fs.DurationVar(&f.given.RetentionEvery, "retention-every", 0, "how often the orgs' retention policies are applied (default 1h; 0 never)")
	fs.StringVar(&f.given.BackupDir, "backup-dir", "", "`directory` of serve's scheduled backups (see backup_schedule)")
	fs.StringVar(&f.given.BackupSchedule, "backup-schedule", "", "cron `expression` (UTC; \"0 2 * * *\", @daily, @every 6h) of serve's scheduled backups\n"+
		"into backup_dir; one replica runs each (default: none)")
	fs.StringVar(&f.given.BackupVerifySchedule, "backup-verify-schedule", "", "cron `expression` of serve's scheduled restore verification of the newest backup\n"+
		"in backup_dir (default: none)")
	fs.StringVar(&f.given.TierSchedule, "tier-schedule", "", "cron `expression` of serve's tiering job, which moves archived, deleted and untouched\n"+
		"memories to the cold tier (default: none)")
	fs.IntVar(&f.given.TierAfterDays, "tier-after-days", 0, "`days` without a write or a read after which the tiering job moves a memory to the\n"+
		"cold tier (default 90)")
	return fs, f
}

// EmbedderFlags defines the embedder flags on fs, writing into c. Only
// flags that were given should be applied (flag.FlagSet.Visit).
func EmbedderFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Embedder, "embedder", "", "embedder of semantic search: builtin (default; offline) or openai (an OpenAI-compatible\n"+
		"API: OpenAI, Ollama /v1, vLLM, LM Studio, TEI)")
	fs.StringVar(&c.EmbedderURL, "embedder-url", "", "base `URL` of the OpenAI-compatible API (https://api.openai.com/v1,\n"+
		"http://localhost:11434/v1); requests go to URL/embeddings")
	fs.StringVar(&c.EmbedderModel, "embedder-model", "", "the API's embedding `model` (text-embedding-3-small, nomic-embed-text)")
	fs.StringVar(&c.EmbedderAPIKeyEnv, "embedder-api-key-env", "", "`name` of the environment variable holding the API key (default "+
		DefaultEmbedderAPIKeyEnv+")")
	fs.DurationVar(&c.EmbedderTimeout, "embedder-timeout", 0, "timeout of one embedding request (default 10s)")
	fs.IntVar(&c.EmbedderBatch, "embedder-batch", 0, "texts per embedding request (default 64)")
}

// Usage lists the serve flags with their help, for `codingbrain serve -h`.
func Usage() string {
	fs, _ := newFlagSet(func(string) string { return "" })
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

// validateBackup checks the backup_* settings.
func (c Config) validateBackup() []error {
	var errs []error
	for _, f := range []struct{ name, spec string }{{"backup_schedule", c.BackupSchedule}, {"backup_verify_schedule", c.BackupVerifySchedule}} {
		if f.spec == "" {
			continue
		}
		if _, err := schedule.Parse(f.spec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
		if c.BackupDir == "" {
			errs = append(errs, fmt.Errorf("%s is set but backup_dir is not: give the directory of the backups", f.name))
		}
	}
	if c.BackupKeepDaily < 0 || c.BackupKeepWeekly < 0 {
		errs = append(errs, fmt.Errorf("backup_keep_daily %d, backup_keep_weekly %d: must be 0 or more", c.BackupKeepDaily, c.BackupKeepWeekly))
	}
	for _, r := range c.BackupRecipients {
		if !strings.HasPrefix(r, "age1") {
			errs = append(errs, fmt.Errorf("backup_recipients: %q is not an age X25519 public key (age1…)", r))
		}
	}
	if c.BackupWebhook != "" {
		if u, err := url.Parse(c.BackupWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("backup_webhook: must be an http:// or https:// URL"))
		}
	}
	return errs
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
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if err == nil && !IsLoopback(host) && c.PublicURL == "" {
		errs = append(errs, fmt.Errorf("public_url is required on the non-loopback address %q: it is the resource tokens are issued for", c.Addr))
	}
	if c.PublicURL != "" {
		if u, perr := url.Parse(c.PublicURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("public_url %q: use an absolute http:// or https:// URL without query or fragment", c.PublicURL))
		}
	}
	if c.JWKSURL != "" {
		if u, perr := url.Parse(c.JWKSURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("jwks_url %q: use an absolute https:// URL (http:// only for a local test IdP)", c.JWKSURL))
		}
	}
	for _, o := range c.CORSOrigins {
		if u, perr := url.Parse(o); o == "*" || perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("cors_origins: %q is not an origin; use scheme://host[:port], and never *", o))
		}
	}
	if c.JWKSRefresh < time.Second {
		errs = append(errs, fmt.Errorf("jwks_refresh %s: use at least 1s", c.JWKSRefresh))
	}
	if c.TokenLeeway < 0 || c.TokenLeeway > 2*time.Minute {
		errs = append(errs, fmt.Errorf("token_leeway %s: use 0s to 2m", c.TokenLeeway))
	}
	if c.ShutdownWait <= 0 {
		errs = append(errs, errors.New("shutdown_wait must be positive"))
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 5*time.Minute {
		errs = append(errs, fmt.Errorf("shutdown_delay %s: use 0s to 5m", c.ShutdownDelay))
	}
	switch c.GDPRSharedMemories {
	case "pseudonymize", "delete":
	default:
		errs = append(errs, fmt.Errorf("gdpr_shared_memories %q: use pseudonymize or delete", c.GDPRSharedMemories))
	}
	if c.RetentionEvery < 0 || (c.RetentionEvery > 0 && c.RetentionEvery < time.Minute) {
		errs = append(errs, fmt.Errorf("retention_every %s: use 0 (never) or at least 1m", c.RetentionEvery))
	}
	errs = append(errs, c.validateBackup()...)
	if c.TierSchedule != "" {
		if _, err := schedule.Parse(c.TierSchedule); err != nil {
			errs = append(errs, fmt.Errorf("tier_schedule: %w", err))
		}
	}
	if c.TierAfterDays < 1 || c.TierAfterDays > 36500 {
		errs = append(errs, fmt.Errorf("tier_after_days %d: use 1 to 36500 days", c.TierAfterDays))
	}
	for _, p := range c.TrustedProxies {
		if _, perr := netip.ParsePrefix(p); perr != nil {
			if _, aerr := netip.ParseAddr(p); aerr != nil {
				errs = append(errs, fmt.Errorf("trusted_proxies: %q is neither a CIDR (10.0.0.0/8, fd00::/8) nor an IP address", p))
			}
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" && c.LogFormat != "auto" {
		errs = append(errs, fmt.Errorf("log_format %q: use json, text or auto", c.LogFormat))
	}
	if c.MetricsAddr != "" {
		if _, _, merr := net.SplitHostPort(c.MetricsAddr); merr != nil {
			errs = append(errs, fmt.Errorf("metrics_addr %q: use host:port, such as 127.0.0.1:9090: %w", c.MetricsAddr, merr))
		} else if c.MetricsAddr == c.Addr {
			errs = append(errs, fmt.Errorf("metrics_addr %q: must differ from addr: it serves without authentication", c.MetricsAddr))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: use debug, info, warn or error", c.LogLevel))
	}
	if c.InsecureNoAuth && err == nil && !IsLoopback(host) {
		errs = append(errs, fmt.Errorf("insecure_no_auth: refused on %q; it works only on a loopback address", c.Addr))
	}
	// URLs are never quoted back: they may hold a password.
	if c.DatabaseURL != "" && !validDatabaseURL(c.DatabaseURL) {
		errs = append(errs, errors.New("database_url: use postgres://user:password@host:port/dbname "+
			"(or postgresql://), or libpq key=value pairs such as \"host=db dbname=codingbrain\""))
	}
	for i, u := range c.ReplicaURLs {
		if !validDatabaseURL(u) {
			errs = append(errs, fmt.Errorf("replica_urls[%d]: use postgres://user:password@host:port/dbname, like database_url", i))
		}
	}
	if len(c.ReplicaURLs) > 0 && c.DatabaseURL == "" {
		errs = append(errs, errors.New("replica_urls: needs database_url, the primary the replicas follow"))
	}
	if c.ReplicaMaxLag < 0 {
		errs = append(errs, fmt.Errorf("replica_max_lag %s: use 0 (the default, 5s) or a positive duration", c.ReplicaMaxLag))
	}
	if c.DBMaxConns < 0 || c.DBMaxConns > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("db_max_conns %d: use 0 (the pool's default) or a positive number", c.DBMaxConns))
	}
	if c.DBConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("db_connect_timeout %s: use 0 (the URL's connect_timeout) or a positive duration", c.DBConnectTimeout))
	}
	if c.DBStatementTimeout < 0 {
		errs = append(errs, fmt.Errorf("db_statement_timeout %s: use 0 (the server's setting) or a positive duration", c.DBStatementTimeout))
	}
	errs = append(errs, c.validateEmbedder()...)
	if c.ValkeyURL != "" && !validValkeyURL(c.ValkeyURL) {
		errs = append(errs, errors.New("valkey_url: use redis://[user:password@]host:port[/db], rediss:// for TLS, or unix:///path/to/socket"))
	}
	return errors.Join(errs...)
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Config) validateEmbedder() []error {
	var errs []error
	switch c.Embedder {
	case "builtin":
	case "openai":
		if u, err := url.Parse(c.EmbedderURL); c.EmbedderURL == "" || err != nil ||
			(u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("embedder_url: the openai embedder needs the API's base URL, "+
				"http:// or https:// (https://api.openai.com/v1, http://localhost:11434/v1)"))
		}
		if strings.TrimSpace(c.EmbedderModel) == "" {
			errs = append(errs, errors.New("embedder_model: the openai embedder needs the model's name "+
				"(text-embedding-3-small, nomic-embed-text)"))
		}
	default:
		errs = append(errs, fmt.Errorf("embedder %q: use %s", c.Embedder, strings.Join(Embedders, " or ")))
	}
	if c.EmbedderAPIKeyEnv != "" && !envName.MatchString(c.EmbedderAPIKeyEnv) {
		// Not quoted: it may be a key put there by mistake.
		errs = append(errs, fmt.Errorf("embedder_api_key_env: give the name of an environment variable, such as %s, "+
			"never the key itself", DefaultEmbedderAPIKeyEnv))
	}
	if c.EmbedderTimeout <= 0 {
		errs = append(errs, fmt.Errorf("embedder_timeout %s: use a positive duration", c.EmbedderTimeout))
	}
	if c.EmbedderBatch < 1 || c.EmbedderBatch > 2048 {
		errs = append(errs, fmt.Errorf("embedder_batch %d: use 1 to 2048", c.EmbedderBatch))
	}
	return errs
}

func validDatabaseURL(s string) bool {
	if !strings.Contains(s, "://") {
		return strings.Contains(s, "=") // libpq key=value pairs
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

func validValkeyURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "redis", "rediss":
		return u.Host != ""
	case "unix":
		return u.Path != ""
	}
	return false
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, strings.TrimRight(v, "/"))
		}
	}
	return out
}

// BaseURL is PublicURL, or http://<addr> when it is not set (loopback).
func (c Config) BaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return "http://" + c.Addr
}

// TokenAudience is the aud tokens must carry: Audience when set, else the
// resource URI of the MCP endpoint under base (BaseURL, or the listener's
// actual address when the port was chosen at start).
func (c Config) TokenAudience(base string) string {
	if c.Audience != "" {
		return c.Audience
	}
	return strings.TrimRight(base, "/") + "/mcp"
}

// IsLoopback reports whether host names only the local machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String prints the config for logs, as JSON with durations as text ("5s")
// and the passwords in database_url and valkey_url masked.
func (c Config) String() string {
	c.DatabaseURL, c.ValkeyURL = MaskURL(c.DatabaseURL), MaskURL(c.ValkeyURL)
	c.ReplicaURLs = append([]string(nil), c.ReplicaURLs...)
	for i, u := range c.ReplicaURLs {
		c.ReplicaURLs[i] = MaskURL(u)
	}
	if c.BackupWebhook != "" {
		c.BackupWebhook = mask
	}
	c.EmbedderURL = MaskURL(c.EmbedderURL)
	b, _ := json.Marshal(c)
	return string(b)
}

// mask replaces secrets in printed URLs.
const mask = "xxxxx"

// keywordPassword matches the password of a libpq key=value string.
var keywordPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']\S*)`)

// MaskURL returns a database or Valkey URL fit for logs: the password of
// its user info and any *password* query parameter are replaced by xxxxx;
// in a libpq key=value string, the values of password and sslpassword are.
// A string that looks like a URL but does not parse is hidden entirely.
func MaskURL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		return keywordPassword.ReplaceAllString(s, "${1}"+mask)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL, hidden)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	if q := u.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// Secrets are the passwords held in the configuration, as written and
// URL-escaped, for scrubbing them out of error messages (a driver's parse
// error may quote the URL it was given).
func (c Config) Secrets() []string {
	var out []string
	add := func(p string) {
		if p != "" && p != mask {
			out = append(out, p)
			if e := url.QueryEscape(p); e != p {
				out = append(out, e)
			}
			if e := url.PathEscape(p); e != p {
				out = append(out, e)
			}
		}
	}
	add(c.embedderAPIKey)
	add(c.BackupWebhook)
	for _, s := range append([]string{c.DatabaseURL, c.ValkeyURL, c.EmbedderURL}, c.ReplicaURLs...) {
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			for _, m := range keywordPassword.FindAllStringSubmatch(s, -1) {
				add(strings.Trim(m[2], "'"))
			}
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			add(s) // cannot find the password in it: hide the whole URL
			continue
		}
		if p, ok := u.User.Password(); ok {
			add(p)
		}
		for k, vs := range u.Query() {
			if strings.Contains(strings.ToLower(k), "password") {
				for _, v := range vs {
					add(v)
				}
			}
		}
	}
	return out
}

// Redact replaces every secret of the configuration in s by xxxxx.
func (c Config) Redact(s string) string {
	for _, p := range c.Secrets() {
		s = strings.ReplaceAll(s, p, mask)
	}
	return s
}

// MarshalJSON writes durations as text ("5s") rather than nanoseconds.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return json.Marshal(struct {
		plain
		ShutdownWait       string `json:"shutdown_wait"`
		DBConnectTimeout   string `json:"db_connect_timeout"`
		DBStatementTimeout string `json:"db_statement_timeout"`
		JWKSRefresh        string `json:"jwks_refresh"`
		TokenLeeway        string `json:"token_leeway"`
		EmbedderTimeout    string `json:"embedder_timeout"`
		ShutdownDelay      string `json:"shutdown_delay"`
		RetentionEvery     string `json:"retention_every"`
	}{plain(c), c.ShutdownWait.String(), c.DBConnectTimeout.String(), c.DBStatementTimeout.String(),
		c.JWKSRefresh.String(), c.TokenLeeway.String(), c.EmbedderTimeout.String(), c.ShutdownDelay.String(),
		c.RetentionEvery.String()})
}

// UnmarshalJSON reads a config file. Durations are text ("5s", "1m30s") or
// a number of nanoseconds; unknown fields are an error.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	aux := struct {
		*plain
		ShutdownWait       json.RawMessage `json:"shutdown_wait"`
		DBConnectTimeout   json.RawMessage `json:"db_connect_timeout"`
		DBStatementTimeout json.RawMessage `json:"db_statement_timeout"`
		JWKSRefresh        json.RawMessage `json:"jwks_refresh"`
		TokenLeeway        json.RawMessage `json:"token_leeway"`
		EmbedderTimeout    json.RawMessage `json:"embedder_timeout"`
		ShutdownDelay      json.RawMessage `json:"shutdown_delay"`
		RetentionEvery     json.RawMessage `json:"retention_every"`
	}{plain: (*plain)(c)}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&aux); err != nil {
		return err
	}
	return errors.Join(
		jsonDuration("shutdown_wait", aux.ShutdownWait, &c.ShutdownWait),
		jsonDuration("db_connect_timeout", aux.DBConnectTimeout, &c.DBConnectTimeout),
		jsonDuration("db_statement_timeout", aux.DBStatementTimeout, &c.DBStatementTimeout),
		jsonDuration("jwks_refresh", aux.JWKSRefresh, &c.JWKSRefresh),
		jsonDuration("token_leeway", aux.TokenLeeway, &c.TokenLeeway),
		jsonDuration("embedder_timeout", aux.EmbedderTimeout, &c.EmbedderTimeout),
		jsonDuration("shutdown_delay", aux.ShutdownDelay, &c.ShutdownDelay),
		jsonDuration("retention_every", aux.RetentionEvery, &c.RetentionEvery))
}

// jsonDuration sets *dst from raw, a duration in a config file, if present.
func jsonDuration(field string, raw json.RawMessage, dst *time.Duration) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s %q: use a duration such as \"5s\" or \"1m30s\"", field, s)
		}
		*dst = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("%s %s: use a duration such as \"5s\" or a number of nanoseconds", field, raw)
	}
	*dst = time.Duration(n)
	return nil
}
