package postgres

import (
	"context"
	"testing"

	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/storetest"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) incident.Store {
		s, err := Open(context.Background(), pglocal.SharedDB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestFiles: attachments in the database, stored through one replica's
// store and read, removed through another's.
func TestFiles(t *testing.T) {
	dsn := pglocal.SharedDB(t)
	var files []*incident.Files
	for range 2 {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		files = append(files, incident.NewFilesIn(s.Blobs(), 1<<20))
	}
	storetest.RunFiles(t, files[0], files[1])
}
