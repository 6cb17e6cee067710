package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/config"
)

func TestMetricsAddrFromFileEnvAndFlag(t *testing.T) {
	if d := config.Default(); d.MetricsAddr != "" || d.LogFormat != "auto" {
		t.Errorf("defaults: metrics_addr %q (want none), log_format %q (want auto)", d.MetricsAddr, d.LogFormat)
	}
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"metrics_addr":"127.0.0.1:9001"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load([]string{"--config", file}, env(nil))
	if err != nil || c.MetricsAddr != "127.0.0.1:9001" {
		t.Fatalf("file: %q, %v", c.MetricsAddr, err)
	}
	c, err = config.Load([]string{"--config", file}, env(map[string]string{"CODINGBRAIN_METRICS_ADDR": "127.0.0.1:9002"}))
	if err != nil || c.MetricsAddr != "127.0.0.1:9002" {
		t.Fatalf("env: %q, %v", c.MetricsAddr, err)
	}
	c, err = config.Load([]string{"--config", file, "--metrics-addr", "127.0.0.1:9003"}, env(map[string]string{"CODINGBRAIN_METRICS_ADDR": "127.0.0.1:9002"}))
	if err != nil || c.MetricsAddr != "127.0.0.1:9003" {
		t.Fatalf("flag: %q, %v", c.MetricsAddr, err)
	}
}

func TestMetricsAddrValidation(t *testing.T) {
	for addr, want := range map[string]string{
		"nonsense":         "metrics_addr \"nonsense\": use host:port",
		config.DefaultAddr: "must differ from addr",
	} {
		_, err := config.Load([]string{"--metrics-addr", addr}, env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("metrics_addr %q: error %v, want it to say %q", addr, err, want)
		}
	}
}
