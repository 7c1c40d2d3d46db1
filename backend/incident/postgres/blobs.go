package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/semko/semko/backend/incident"
)

// Blobs keeps attachment contents in the incident_files table (bytea), so
// every replica of a cluster serves the files any of them took. A file is
// at most the desk's max_attachment (10 MiB by default), well within what
// a bytea value and one round trip carry; Open reads it whole.
type Blobs struct{ db *sql.DB }

var _ incident.Blobs = Blobs{}

// Blobs returns the attachment contents kept beside the store's incidents.
// They share its connections: close the Store when done with both.
func (s *Store) Blobs() Blobs { return Blobs{db: s.db} }

// Store implements incident.Blobs. The primary key decides, so two
// replicas storing one scan at once create it once.
func (b Blobs) Store(ctx context.Context, hash string, data []byte) (bool, error) {
	res, err := b.db.ExecContext(ctx, `INSERT INTO incident_files(hash, data) VALUES($1, $2) ON CONFLICT (hash) DO NOTHING`, hash, data)
	if err != nil {
		return false, fmt.Errorf("store file %s: %w", hash, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store file %s: %w", hash, err)
	}
	return n == 1, nil
}

// Open implements incident.Blobs.
func (b Blobs) Open(ctx context.Context, hash string) (io.ReadCloser, error) {
	var data []byte
	err := b.db.QueryRowContext(ctx, `SELECT data FROM incident_files WHERE hash = $1`, hash).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, incident.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read file %s: %w", hash, err)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Remove implements incident.Blobs.
func (b Blobs) Remove(ctx context.Context, hash string) error {
	if _, err := b.db.ExecContext(ctx, `DELETE FROM incident_files WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("remove file %s: %w", hash, err)
	}
	return nil
}
