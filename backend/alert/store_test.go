package alert_test

import (
	"testing"

	"github.com/semko/semko/backend/alert"
	"github.com/semko/semko/backend/alert/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) alert.Store { return alert.NewMemStore() })
}
