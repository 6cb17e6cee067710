//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// NewReplica makes a streaming replica of c: pg_basebackup -R (which
// writes standby.signal and primary_conninfo) into a directory of its own,
// started on another port. It is a hot standby: it answers reads and
// replays c's WAL as it streams in. Stop, Start and Remove work on it as
// on any cluster.
func (c *Cluster) NewReplica() (*Cluster, error) {
	dir, err := os.MkdirTemp("", "codingbrain-pg-replica-")
	if err != nil {
		return nil, err
	}
	r := &Cluster{dir: dir, bin: serverBin(c.bin), cred: c.cred}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := r.run("pg_basebackup", "-D", filepath.Join(dir, "data"), "-R", "-X", "stream", "-c", "fast",
		"-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		r.Port, err = freePort()
		if err == nil {
			err = r.Start()
		}
		if err == nil {
			return r, nil
		}
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// Replica starts a streaming replica of c for one test and removes it when
// the test ends.
func Replica(t testing.TB, c *Cluster) *Cluster {
	t.Helper()
	r, err := c.NewReplica()
	if err != nil {
		t.Fatalf("start a replica: %v", err)
	}
	t.Cleanup(r.Remove)
	return r
}

// serverBin is the directory holding all of PostgreSQL's programs:
// bin itself when pg_basebackup is there, else the directory initdb links
// to (PATH may hold links to a few of them only).
func serverBin(bin string) string {
	if _, err := os.Stat(filepath.Join(bin, "pg_basebackup")); err == nil {
		return bin
	}
	if p, err := filepath.EvalSymlinks(filepath.Join(bin, "initdb")); err == nil {
		return filepath.Dir(p)
	}
	return bin
}
