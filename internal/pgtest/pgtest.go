//go:build unix

// Package pgtest starts throw-away PostgreSQL clusters for tests: initdb into
// a temporary directory, a random port on 127.0.0.1, fsync off. Tests get a
// fresh database each on a cluster shared by the test process, or a cluster
// of their own when they need to stop and start it.
//
// When the PostgreSQL server binaries are not installed the tests skip with a
// message saying so — unless CODINGBRAIN_TEST_REQUIRE_SERVICES=1 (as in CI),
// which turns the skip into a failure. CODINGBRAIN_TEST_POSTGRES_URL points
// the shared cluster at an existing server instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is one running PostgreSQL server owned by the test process.
type Cluster struct {
	Port int
	dir  string
	bin  string
	cred *syscall.Credential
}

// URL is the connection string for database db as the postgres superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Dir is the cluster's directory (data in Dir/data, log in Dir/log).
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) run(name string, args ...string) error {
	out, err := c.command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}

// Start starts the server (after Stop) and waits until it accepts connections.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c max_connections=300 -c wal_level=replica", c.Port, c.dir)
	return c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start")
}

// Stop shuts the server down as an operator's restart does ("fast":
// sessions are cut, a checkpoint is written, so every commit survives even
// with synchronous_commit off). It stays on disk and can be started again.
func (c *Cluster) Stop() error {
	return c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop")
}

// Crash stops the server without a checkpoint, like a power cut: with this
// cluster's fsync and synchronous_commit off, the last commits may be lost.
func (c *Cluster) Crash() error {
	return c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
}

// Remove stops the server if it runs and deletes its files.
func (c *Cluster) Remove() {
	_ = c.Crash()
	_ = os.RemoveAll(c.dir)
}

// Available reports whether clusters can be started here, and why not.
func Available() (bin string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql to run these tests")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// NewCluster initialises and starts a new cluster.
func NewCluster() (*Cluster, error) {
	bin, err := Available()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "codingbrain-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the server as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := c.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c.Port, err = freePort()
		if err == nil {
			err = c.Start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// skipOrFail skips the test with reason, or fails it when the environment
// requires real services.
func skipOrFail(t testing.TB, reason error) {
	t.Helper()
	if os.Getenv("CODINGBRAIN_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("PostgreSQL required (CODINGBRAIN_TEST_REQUIRE_SERVICES=1): %v", reason)
	}
	t.Skipf("skipping: %v", reason)
}

// New starts a cluster for one test and removes it when the test ends. Use
// it when the test stops or restarts the server; otherwise use Database.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := NewCluster()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(c.Remove)
	return c
}

var shared struct {
	once  sync.Once
	admin string // admin URL of the shared server
	c     *Cluster
	err   error
}

// Main runs the tests and then removes the shared cluster, if one was started.
// Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		shared.c.Remove()
	}
	return code
}

// Database creates a fresh, empty database for the test on the shared
// cluster and returns its URL. The database is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		if u := os.Getenv("CODINGBRAIN_TEST_POSTGRES_URL"); u != "" {
			shared.admin = u
			return
		}
		shared.c, shared.err = NewCluster()
		if shared.err == nil {
			shared.admin = shared.c.URL("postgres")
		}
	})
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	return CreateDatabase(t, shared.admin)
}

// CreateDatabase creates a database with a random name on the server of
// adminURL and drops it when the test ends.
func CreateDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, adminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}
