package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) incident.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "incidents.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
