package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"addr":"127.0.0.1:1111","data_dir":"/from-file","log_level":"debug"}`), 0o600)
	c, err := config.Load([]string{"--config", file, "--data-dir", "/from-flag"},
		env(map[string]string{"CODINGBRAIN_ADDR": "127.0.0.1:2222", "CODINGBRAIN_DATA_DIR": "/from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:2222" || c.DataDir != "/from-flag" || c.LogLevel != "debug" {
		t.Errorf("config = %+v", c)
	}
	if d := config.Default(); d.Addr != "127.0.0.1:8765" {
		t.Errorf("default addr = %s", d.Addr)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := config.Load(nil, env(map[string]string{
		"CODINGBRAIN_ADDR": "nonsense", "CODINGBRAIN_LOG_FORMAT": "xml", "CODINGBRAIN_LOG_LEVEL": "loud",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"addr", "log_format", "log_level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestNoAuthOnlyOnLoopback(t *testing.T) {
	if _, err := config.Load([]string{"--insecure-dev-no-auth", "--addr", "127.0.0.1:9"}, env(nil)); err != nil {
		t.Errorf("loopback refused: %v", err)
	}
	for _, addr := range []string{"0.0.0.0:8765", ":8765", "10.1.2.3:80"} {
		_, err := config.Load([]string{"--insecure-dev-no-auth", "--addr", addr}, env(nil))
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: err = %v, want a loopback refusal", addr, err)
		}
	}
}

func TestBadEnvNamesVariable(t *testing.T) {
	_, err := config.Load(nil, env(map[string]string{"CODINGBRAIN_MAX_BODY_BYTES": "lots"}))
	if err == nil || !strings.Contains(err.Error(), "CODINGBRAIN_MAX_BODY_BYTES") {
		t.Errorf("err = %v", err)
	}
}

func TestBackendDefaults(t *testing.T) {
	c, err := config.Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "" || c.ValkeyURL != "" || c.Migrate || c.DBMaxConns != 0 ||
		c.DBConnectTimeout != 5*time.Second || c.DBStatementTimeout != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestBackendSettingsFromFileEnvAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{
		"database_url": "postgres://file@db/cb", "db_max_conns": 7, "db_connect_timeout": "2s",
		"db_statement_timeout": 1500000000, "valkey_url": "redis://file:6379/0", "migrate": true,
		"shutdown_wait": "20s"}`), 0o600)

	c, err := config.Load([]string{"--config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://file@db/cb" || c.DBMaxConns != 7 || c.DBConnectTimeout != 2*time.Second ||
		c.DBStatementTimeout != 1500*time.Millisecond || c.ValkeyURL != "redis://file:6379/0" || !c.Migrate ||
		c.ShutdownWait != 20*time.Second {
		t.Errorf("from file: %+v", c)
	}

	e := env(map[string]string{
		"CODINGBRAIN_CONFIG":               file,
		"CODINGBRAIN_DATABASE_URL":         "postgres://env@db/cb",
		"CODINGBRAIN_DB_MAX_CONNS":         "9",
		"CODINGBRAIN_DB_CONNECT_TIMEOUT":   "3s",
		"CODINGBRAIN_DB_STATEMENT_TIMEOUT": "0",
		"CODINGBRAIN_VALKEY_URL":           "redis://env:6379/1",
		"CODINGBRAIN_MIGRATE":              "false",
	})
	c, err = config.Load(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://env@db/cb" || c.DBMaxConns != 9 || c.DBConnectTimeout != 3*time.Second ||
		c.DBStatementTimeout != 0 || c.ValkeyURL != "redis://env:6379/1" || c.Migrate {
		t.Errorf("from env over file: %+v", c)
	}

	c, err = config.Load([]string{"--database-url", "host=flag dbname=cb", "--db-max-conns", "0",
		"--db-connect-timeout", "4s", "--db-statement-timeout", "45s", "--valkey-url", "rediss://flag:6380", "--migrate"}, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "host=flag dbname=cb" || c.DBMaxConns != 0 || c.DBConnectTimeout != 4*time.Second ||
		c.DBStatementTimeout != 45*time.Second || c.ValkeyURL != "rediss://flag:6380" || !c.Migrate {
		t.Errorf("from flags over env: %+v", c)
	}
	// A flag given with a zero value still overrides.
	c, err = config.Load([]string{"--migrate=false", "--db-statement-timeout", "0"},
		env(map[string]string{"CODINGBRAIN_MIGRATE": "1", "CODINGBRAIN_DB_STATEMENT_TIMEOUT": "10s"}))
	if err != nil || c.Migrate || c.DBStatementTimeout != 0 {
		t.Errorf("zero-valued flags: %+v, %v", c, err)
	}
}

func TestBackendValidation(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // in the error
	}{
		{map[string]string{"CODINGBRAIN_DATABASE_URL": "mysql://u:hunter2@db/x"}, "database_url: use postgres://"},
		{map[string]string{"CODINGBRAIN_DATABASE_URL": "just-a-name"}, "database_url: use postgres://"},
		{map[string]string{"CODINGBRAIN_DB_MAX_CONNS": "-1"}, "db_max_conns -1: use 0"},
		{map[string]string{"CODINGBRAIN_DB_CONNECT_TIMEOUT": "-1s"}, "db_connect_timeout -1s"},
		{map[string]string{"CODINGBRAIN_DB_STATEMENT_TIMEOUT": "-2s"}, "db_statement_timeout -2s"},
		{map[string]string{"CODINGBRAIN_VALKEY_URL": "http://:hunter2@cache:6379"}, "valkey_url: use redis://"},
		{map[string]string{"CODINGBRAIN_VALKEY_URL": "redis://"}, "valkey_url: use redis://"},
		{map[string]string{"CODINGBRAIN_MIGRATE": "sometimes"}, "CODINGBRAIN_MIGRATE"},
		{map[string]string{"CODINGBRAIN_DB_CONNECT_TIMEOUT": "soon"}, "CODINGBRAIN_DB_CONNECT_TIMEOUT"},
	} {
		_, err := config.Load(nil, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: the error quotes the password: %v", tc.env, err)
		}
	}
	for _, ok := range []string{"postgres://u:p@db:5432/cb?sslmode=require", "postgresql:///cb?host=/run/postgresql", "host=db user=u dbname=cb"} {
		if _, err := config.Load([]string{"--database-url", ok}, env(nil)); err != nil {
			t.Errorf("database_url %s refused: %v", ok, err)
		}
	}
	for _, ok := range []string{"redis://127.0.0.1:6379/0", "rediss://u:p@cache:6380", "unix:///run/valkey.sock"} {
		if _, err := config.Load([]string{"--valkey-url", ok}, env(nil)); err != nil {
			t.Errorf("valkey_url %s refused: %v", ok, err)
		}
	}
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"db_connect_timeout": "soon"}`), 0o600)
	if _, err := config.Load([]string{"--config", file}, env(nil)); err == nil || !strings.Contains(err.Error(), "db_connect_timeout") {
		t.Errorf("bad duration in file: %v", err)
	}
	os.WriteFile(file, []byte(`{"database_uri": "postgres://db/cb"}`), 0o600)
	if _, err := config.Load([]string{"--config", file}, env(nil)); err == nil || !strings.Contains(err.Error(), "database_uri") {
		t.Errorf("unknown field in file: %v", err)
	}
}

func TestStringMasksPasswords(t *testing.T) {
	for _, tc := range []struct {
		db, valkey string
		secrets    []string
		keep       []string // still printed
	}{
		{"postgres://cb:s3cr%2Ft@db:5432/cb?sslmode=require", "redis://:v4lk3y@cache:6379/0",
			[]string{"s3cr", "v4lk3y"}, []string{"cb:xxxxx@db:5432", "sslmode=require", ":xxxxx@cache:6379"}},
		{"postgres://cb@db/cb?password=qu3ry&sslpassword=k3y", "rediss://default:p%40ss@cache:6380",
			[]string{"qu3ry", "k3y", "p%40ss", "p@ss"}, []string{"password=xxxxx", "default:xxxxx@cache"}},
		{"host=db user=cb password='with space' dbname=cb", "", []string{"with space"}, []string{"host=db", "password=xxxxx", "dbname=cb"}},
		{"host=db password=plain sslpassword=k3yp dbname=cb", "", []string{"plain", "k3yp"}, []string{"dbname=cb"}},
	} {
		c := config.Default()
		c.DatabaseURL, c.ValkeyURL = tc.db, tc.valkey
		s := c.String()
		for _, secret := range tc.secrets {
			if strings.Contains(s, secret) {
				t.Errorf("String() shows %q: %s", secret, s)
			}
			msg := c.Redact("dial " + tc.db + " " + tc.valkey + ": failed")
			if strings.Contains(msg, secret) {
				t.Errorf("Redact leaves %q: %s", secret, msg)
			}
		}
		for _, want := range tc.keep {
			if !strings.Contains(s, want) {
				t.Errorf("String() lacks %q: %s", want, s)
			}
		}
	}
	c := config.Default()
	if s := c.String(); !strings.Contains(s, `"db_statement_timeout":"30s"`) || !strings.Contains(s, `"shutdown_wait":"15s"`) {
		t.Errorf("String() durations: %s", s)
	}
	if got := config.MaskURL("postgres://u:p@[bad"); strings.Contains(got, "p@") {
		t.Errorf("MaskURL of an unparsable URL: %s", got)
	}
}

func TestAuthSettings(t *testing.T) {
	env := map[string]string{"CODINGBRAIN_JWKS_URL": "https://id.example/jwks.json", "CODINGBRAIN_TOKEN_LEEWAY": "10s"}
	c, err := config.Load([]string{"--public-url", "https://brain.example"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURL != "https://id.example/jwks.json" || c.TokenLeeway != 10*time.Second || c.JWKSRefresh != 5*time.Minute {
		t.Errorf("config = %+v", c)
	}
	if got := c.TokenAudience(c.BaseURL()); got != "https://brain.example/mcp" {
		t.Errorf("default audience = %q, want the resource URI", got)
	}
	c.Audience = "api://codingbrain"
	if got := c.TokenAudience(c.BaseURL()); got != "api://codingbrain" {
		t.Errorf("explicit audience = %q", got)
	}
	if got := config.Default().TokenAudience(config.Default().BaseURL()); got != "http://127.0.0.1:8765/mcp" {
		t.Errorf("local default audience = %q", got)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"public url needed off loopback": {[]string{"--addr", "0.0.0.0:8765"}, "public_url is required"},
		"public url not absolute":        {[]string{"--public-url", "brain.example"}, "public_url"},
		"jwks url not http":              {[]string{"--jwks-url", "file:///etc/jwks.json"}, "jwks_url"},
	} {
		_, err := config.Load(tc.args, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	_, err = config.Load(nil, func(k string) string {
		return map[string]string{"CODINGBRAIN_TOKEN_LEEWAY": "10m"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "token_leeway") {
		t.Errorf("leeway 10m: err = %v", err)
	}
	if _, err := config.Load([]string{"--addr", "0.0.0.0:8765", "--public-url", "https://brain.example"}, func(string) string { return "" }); err != nil {
		t.Errorf("non-loopback with public url: %v", err)
	}
}

func TestCORSOrigins(t *testing.T) {
	c, err := config.Load([]string{"--cors-origins", "https://a.example, https://b.example:8443/"}, func(string) string { return "" })
	if err != nil || strings.Join(c.CORSOrigins, " ") != "https://a.example https://b.example:8443" {
		t.Fatalf("origins %q, %v", c.CORSOrigins, err)
	}
	for _, bad := range []string{"*", "a.example", "https://a.example/path", "ftp://a.example"} {
		if _, err := config.Load([]string{"--cors-origins", bad}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "cors_origins") {
			t.Errorf("origin %q: err = %v", bad, err)
		}
	}
}

func TestOperabilitySettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"rate_limits":"read=10","trusted_proxies":["10.0.0.0/8"],"shutdown_delay":"3s"}`), 0o600)
	c, err := config.Load([]string{"--config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimits != "read=10" || len(c.TrustedProxies) != 1 || c.ShutdownDelay != 3*time.Second {
		t.Errorf("from file: %+v", c)
	}
	c, err = config.Load([]string{"--config", file, "--rate-limits", "mcp=0", "--shutdown-delay", "0s", "--shutdown-wait", "2s"},
		env(map[string]string{"CODINGBRAIN_TRUSTED_PROXIES": "192.0.2.1, fd00::/8"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimits != "mcp=0" || strings.Join(c.TrustedProxies, " ") != "192.0.2.1 fd00::/8" || c.ShutdownDelay != 0 || c.ShutdownWait != 2*time.Second {
		t.Errorf("from env and flags: %+v", c)
	}
	if d := config.Default(); d.ShutdownDelay != 0 || d.RateLimits != "" || len(d.TrustedProxies) != 0 {
		t.Errorf("defaults: %+v", d)
	}
	_, err = config.Load([]string{"--trusted-proxies", "10.0.0.0/40,proxy.local", "--shutdown-delay", "-1s"}, env(nil))
	for _, want := range []string{`"10.0.0.0/40"`, `"proxy.local"`, "shutdown_delay"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}
