package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
)

var _ auth.KeyStore = (*Store)(nil)

const apiKeyColumns = `id, org_id, subject, scopes, grants, app, secret_hash,
	created_at, created_by, expires_at, revoked_at, last_used_at`

// CreateAPIKey stores k; a taken id is auth.ErrAPIKeyExists. Of concurrent
// creates of one id, the primary key lets exactly one commit.
func (s *Store) CreateAPIKey(ctx context.Context, k auth.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.OrgID, k.Subject, nonNilStrings(k.Scopes), nonNilStrings(k.Grants), k.App, k.SecretHash,
		utc(k.CreatedAt), k.CreatedBy, utcPtr(k.ExpiresAt), utcPtr(k.RevokedAt), utcPtr(k.LastUsedAt))
	if isUnique(err) {
		return fmt.Errorf("create api key %s: %w", k.ID, auth.ErrAPIKeyExists)
	}
	if err != nil {
		return fmt.Errorf("create api key: %w", s.dbErr(err))
	}
	return nil
}

// APIKeyByID returns the key with id in any org, or auth.ErrAPIKeyNotFound.
func (s *Store) APIKeyByID(ctx context.Context, id string) (auth.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.APIKey{}, fmt.Errorf("api key %s: %w", id, auth.ErrAPIKeyNotFound)
	}
	if err != nil {
		return auth.APIKey{}, fmt.Errorf("read api key %s: %w", id, s.dbErr(err))
	}
	return k, nil
}

// ListAPIKeys returns the keys of org, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, orgID string) ([]auth.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", s.dbErr(err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", s.dbErr(err))
	}
	return keys, nil
}

// RevokeAPIKey marks the key of org revoked, keeping an earlier revocation
// time; a key of another org is auth.ErrAPIKeyNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, orgID, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
		WHERE org_id = $1 AND id = $2`, orgID, id, utc(at))
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, s.dbErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke api key %s: %w", id, auth.ErrAPIKeyNotFound)
	}
	return nil
}

// TouchAPIKey sets last_used_at to at unless it is already as late.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`, id, utc(at)); err != nil {
		return fmt.Errorf("record use of api key %s: %w", id, s.dbErr(err))
	}
	return nil
}

func scanAPIKey(r pgx.Row) (auth.APIKey, error) {
	var k auth.APIKey
	if err := r.Scan(&k.ID, &k.OrgID, &k.Subject, &k.Scopes, &k.Grants, &k.App, &k.SecretHash,
		&k.CreatedAt, &k.CreatedBy, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt); err != nil {
		return auth.APIKey{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = utcPtr(k.ExpiresAt), utcPtr(k.RevokedAt), utcPtr(k.LastUsedAt)
	if len(k.Scopes) == 0 {
		k.Scopes = nil
	}
	if len(k.Grants) == 0 {
		k.Grants = nil
	}
	return k, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
