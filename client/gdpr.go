package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/codingbrain/codingbrain/internal/gdpr"
)

// Aliases for the privacy API's types.
type (
	SubjectExport   = gdpr.Export
	EraseResult     = gdpr.EraseResult
	CheckResult     = gdpr.CheckResult
	RetentionPolicy = gdpr.RetentionPolicy
)

// RetentionChange is the body of PUT /api/v1/admin/retention: nil fields
// keep their value.
type RetentionChange struct {
	AccessLogDays        *int `json:"access_log_days,omitempty"`
	ArchiveUntouchedDays *int `json:"archive_untouched_days,omitempty"`
	PurgeDeletedDays     *int `json:"purge_deleted_days,omitempty"`
}

func subjectPath(sub string) string { return "/api/v1/gdpr/subjects/" + url.PathEscape(sub) }

// ExportSubject returns everything stored about a subject of the caller's
// org (scope gdpr:read).
func (c *Client) ExportSubject(ctx context.Context, sub string) (SubjectExport, error) {
	var out SubjectExport
	if _, err := c.do(ctx, http.MethodGet, subjectPath(sub)+"/export", nil, nil, nil, &out); err != nil {
		return out, fmt.Errorf("export subject: %w", err)
	}
	return out, nil
}

// EraseSubject erases a subject of the caller's org (scope gdpr:delete)
// and returns the receipt and the no-trace check.
func (c *Client) EraseSubject(ctx context.Context, sub, reason string) (EraseResult, error) {
	var out EraseResult
	body := map[string]string{"reason": reason}
	if _, err := c.do(ctx, http.MethodDelete, subjectPath(sub), nil, nil, body, &out); err != nil {
		return out, fmt.Errorf("erase subject: %w", err)
	}
	return out, nil
}

// CheckSubject searches every source for a subject of the caller's org
// (scope gdpr:read).
func (c *Client) CheckSubject(ctx context.Context, sub string) (CheckResult, error) {
	var out CheckResult
	if _, err := c.do(ctx, http.MethodGet, subjectPath(sub)+"/check", nil, nil, nil, &out); err != nil {
		return out, fmt.Errorf("check subject: %w", err)
	}
	return out, nil
}

// Retention returns the caller's org's retention policy (scope admin:read).
func (c *Client) Retention(ctx context.Context) (RetentionPolicy, error) {
	var out RetentionPolicy
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/admin/retention", nil, nil, nil, &out); err != nil {
		return out, fmt.Errorf("read retention policy: %w", err)
	}
	return out, nil
}

// SetRetention changes the caller's org's retention policy (scope
// admin:write).
func (c *Client) SetRetention(ctx context.Context, ch RetentionChange) (RetentionPolicy, error) {
	var out RetentionPolicy
	if _, err := c.do(ctx, http.MethodPut, "/api/v1/admin/retention", nil, nil, ch, &out); err != nil {
		return out, fmt.Errorf("set retention policy: %w", err)
	}
	return out, nil
}
