package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/semko/semko/backend/report/delivery"
	"github.com/semko/semko/backend/report/delivery/storetest"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.db")
	var cur *Store
	open := func(t *testing.T) delivery.Store {
		if cur != nil {
			cur.Close()
		}
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		cur = s
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, open, open)
}
