package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// routeReads puts the PostgreSQL replicas cfg names behind the store:
// reads go to one that is healthy, within replica_max_lag and has the
// caller's last write (postgres.Routed), with the write positions kept in
// the shared state so that every server replica agrees. Each replica is a
// non-critical dependency in /health/deps, its circuit breaker listed there
// and in codingbrain_breaker_state. Without replicas it does
// nothing.
func (b *backends) routeReads(ctx context.Context, cfg config.Config, reg prometheus.Registerer, log *slog.Logger) error {
	if len(cfg.ReplicaURLs) == 0 {
		return nil
	}
	primary, ok := b.store.(*postgres.Store)
	if !ok {
		return fmt.Errorf("replica_urls: replicas need a PostgreSQL database_url")
	}
	var replicas []*postgres.Store
	for i, u := range cfg.ReplicaURLs {
		rc := postgresConfig(cfg)
		rc.URL = u
		s, err := postgres.OpenReplica(rc)
		if err != nil {
			for _, r := range replicas {
				r.Close()
			}
			return fmt.Errorf("replica_urls[%d]: %s", i, cfg.Redact(err.Error()))
		}
		replicas = append(replicas, s)
		name := fmt.Sprintf("replica-%d", i+1)
		b.checks = append(b.checks, httpapi.Check{Name: name, Critical: false, Probe: s.Ping})
		log.Info("read replica", "replica", name, "url", config.MaskURL(u))
	}
	r, err := postgres.NewRouted(ctx, primary, replicas, postgres.ReplicaOptions{
		MaxLag: cfg.ReplicaMaxLag, Writes: b.shared, Registerer: reg, Logger: log,
		OnStateChange: func(name, _, to string) { b.breakerChanged(name, to) },
	})
	if err != nil {
		for _, s := range replicas {
			s.Close()
		}
		return err
	}
	for i := range replicas {
		name := fmt.Sprintf("replica-%d", i+1)
		b.breakers = append(b.breakers, httpapi.Breaker{Name: name, State: r.Breakers()[name]})
	}
	b.store = r
	return nil
}
