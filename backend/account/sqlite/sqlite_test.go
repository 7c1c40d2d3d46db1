package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/semko/semko/backend/account"
	"github.com/semko/semko/backend/account/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) account.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "accounts.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
