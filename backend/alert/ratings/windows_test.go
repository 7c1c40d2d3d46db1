package ratings_test

import (
	"testing"

	"github.com/semko/semko/backend/alert/ratings"
	"github.com/semko/semko/backend/alert/ratings/windowstest"
)

func TestMemoryWindows(t *testing.T) {
	windowstest.Run(t, func(*testing.T) (ratings.Windows, ratings.Windows) {
		m := ratings.NewMemory()
		return m, m
	})
}
