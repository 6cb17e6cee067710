package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
