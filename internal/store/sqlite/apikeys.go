package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ auth.KeyStore = (*Store)(nil)

const apiKeyColumns = `id, org_id, subject, scopes, grants, app, secret_hash,
	created_at, created_by, expires_at, revoked_at, last_used_at`

// CreateAPIKey stores k; a taken id is auth.ErrAPIKeyExists.
func (s *Store) CreateAPIKey(ctx context.Context, k auth.APIKey) error {
	scopes, err := json.Marshal(nonNilStrings(k.Scopes))
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	grants, err := json.Marshal(nonNilStrings(k.Grants))
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.OrgID, k.Subject, string(scopes), string(grants), k.App, k.SecretHash,
		formatTime(k.CreatedAt), k.CreatedBy, nullTime(k.ExpiresAt), nullTime(k.RevokedAt), nullTime(k.LastUsedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("create api key %s: %w", k.ID, auth.ErrAPIKeyExists)
	}
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// isKeyTaken reports whether err is a primary-key or unique violation.
func isKeyTaken(err error) bool {
	var e *driver.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

// APIKeyByID returns the key with id in any org, or auth.ErrAPIKeyNotFound.
func (s *Store) APIKeyByID(ctx context.Context, id string) (auth.APIKey, error) {
	k, err := scanAPIKey(s.queryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.APIKey{}, fmt.Errorf("api key %s: %w", id, auth.ErrAPIKeyNotFound)
	}
	if err != nil {
		return auth.APIKey{}, fmt.Errorf("read api key %s: %w", id, err)
	}
	return k, nil
}

// ListAPIKeys returns the keys of org, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, orgID string) ([]auth.APIKey, error) {
	rows, err := s.query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE org_id = ? ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []auth.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks the key of org revoked, keeping an earlier revocation
// time; a key of another org is auth.ErrAPIKeyNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, orgID, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)
		WHERE org_id = ? AND id = ?`, formatTime(at), orgID, id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke api key %s: %w", id, auth.ErrAPIKeyNotFound)
	}
	return nil
}

// TouchAPIKey sets last_used_at to at unless it is already as late.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	t := formatTime(at)
	if _, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ?
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, t, id, t); err != nil {
		return fmt.Errorf("record use of api key %s: %w", id, err)
	}
	return nil
}

// apiKeyRow is a *sql.Row or *sql.Rows.
type apiKeyRow interface{ Scan(dest ...any) error }

func scanAPIKey(r apiKeyRow) (auth.APIKey, error) {
	var (
		k                         auth.APIKey
		scopes, grants, createdAt string
		expires, revoked, used    sql.NullString
	)
	if err := r.Scan(&k.ID, &k.OrgID, &k.Subject, &scopes, &grants, &k.App, &k.SecretHash,
		&createdAt, &k.CreatedBy, &expires, &revoked, &used); err != nil {
		return auth.APIKey{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return auth.APIKey{}, fmt.Errorf("api key %s: scopes: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(grants), &k.Grants); err != nil {
		return auth.APIKey{}, fmt.Errorf("api key %s: grants: %w", k.ID, err)
	}
	var err error
	if k.CreatedAt, err = parseTime(createdAt); err != nil {
		return auth.APIKey{}, err
	}
	for _, f := range []struct {
		src sql.NullString
		dst **time.Time
	}{{expires, &k.ExpiresAt}, {revoked, &k.RevokedAt}, {used, &k.LastUsedAt}} {
		if !f.src.Valid {
			continue
		}
		t, err := parseTime(f.src.String)
		if err != nil {
			return auth.APIKey{}, err
		}
		*f.dst = &t
	}
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
