package postgres

import (
	"context"
	"testing"

	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/delivery/storetest"
	"github.com/semko/semko/internal/pglocal"
)

func TestMain(m *testing.M) { pglocal.Main(m) }

// TestStore runs the suite; its reopen closes the first store's
// connections and opens the same database again, as a restarted replica.
func TestStore(t *testing.T) {
	dsn := pglocal.SharedDB(t)
	var cur *Store
	open := func(t *testing.T) delivery.Store {
		if cur != nil {
			cur.Close()
		}
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		cur = s
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, open, open)
}
