package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEmbedderConfig(t *testing.T) {
	c, err := config.Load(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedder != "builtin" || c.EmbedderAPIKeyEnv != config.DefaultEmbedderAPIKeyEnv ||
		c.EmbedderTimeout != 10*time.Second || c.EmbedderBatch != 64 || c.EmbedderAPIKey() != "" {
		t.Errorf("defaults: %+v", c)
	}

	const key = "sk-live-abcdef0123456789"
	env := map[string]string{
		"CODINGBRAIN_EMBEDDER":         "openai",
		"CODINGBRAIN_EMBEDDER_URL":     "http://localhost:11434/v1",
		"CODINGBRAIN_EMBEDDER_MODEL":   "nomic-embed-text",
		"CODINGBRAIN_EMBEDDER_TIMEOUT": "3s",
		"CODINGBRAIN_EMBEDDER_API_KEY": key,
		"MY_KEY":                       "other-key-xyz",
	}
	c, err = config.Load([]string{"--embedder-batch", "16"}, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedder != "openai" || c.EmbedderURL != "http://localhost:11434/v1" || c.EmbedderModel != "nomic-embed-text" ||
		c.EmbedderTimeout != 3*time.Second || c.EmbedderBatch != 16 || c.EmbedderAPIKey() != key {
		t.Errorf("from the environment and flags: %+v, key %q", c, c.EmbedderAPIKey())
	}
	if s := c.String(); strings.Contains(s, key) || !strings.Contains(s, `"embedder_timeout":"3s"`) {
		t.Errorf("String shows the key or misses the timeout: %s", s)
	}
	if got := c.Redact("request failed: Bearer " + key); strings.Contains(got, key) {
		t.Errorf("Redact left the key: %s", got)
	}
	c, err = config.Load([]string{"--embedder-api-key-env", "MY_KEY"}, envOf(env))
	if err != nil || c.EmbedderAPIKey() != "other-key-xyz" {
		t.Errorf("key from a named variable: %q, %v", c.EmbedderAPIKey(), err)
	}

	// A config file names the variable, never the key.
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	b, _ := json.Marshal(map[string]any{"embedder": "openai", "embedder_url": "https://api.openai.com/v1",
		"embedder_model": "text-embedding-3-small", "embedder_timeout": "20s", "embedder_api_key_env": "MY_KEY"})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = config.Load([]string{"--config", file}, envOf(map[string]string{"MY_KEY": "k1"}))
	if err != nil || c.EmbedderTimeout != 20*time.Second || c.EmbedderAPIKey() != "k1" {
		t.Errorf("from a file: %+v, key %q, %v", c, c.EmbedderAPIKey(), err)
	}
}

func TestEmbedderValidation(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"--embedder", "word2vec"}, "embedder "},
		{[]string{"--embedder", "openai", "--embedder-model", "m"}, "embedder_url"},
		{[]string{"--embedder", "openai", "--embedder-model", "m", "--embedder-url", "localhost:11434"}, "embedder_url"},
		{[]string{"--embedder", "openai", "--embedder-url", "http://x/v1"}, "embedder_model"},
		{[]string{"--embedder-timeout", "0s"}, "embedder_timeout"},
		{[]string{"--embedder-batch", "0"}, "embedder_batch"},
		{[]string{"--embedder-batch", "5000"}, "embedder_batch"},
		{[]string{"--embedder-api-key-env", "sk-abc=def"}, "embedder_api_key_env"},
	} {
		_, err := config.Load(tc.args, envOf(nil))
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: %v; want an error naming %s", tc.args, err, tc.field)
		}
	}
}
