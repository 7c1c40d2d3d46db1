// Package sqldoc reads rows whose one column is a JSON document, the shape
// every Semko store keeps its records in (alerts, events, silences,
// incidents and their trail, report subscriptions) on SQLite and
// PostgreSQL alike, so the scan-and-decode loop is written once.
package sqldoc

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// Querier is a database or a transaction.
type Querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// Query runs q, whose rows each hold one JSON document, and decodes every
// document into a T. what names the records in errors ("alerts").
func Query[T any](ctx context.Context, db Querier, what, q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("scan %s: %w", what, err)
		}
		var v T
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query %s: %w", what, err)
	}
	return out, nil
}
