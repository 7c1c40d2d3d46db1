package incident_test

import (
	"testing"

	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/incident/storetest"
)

// TestFilesDir: the directory of one machine, opened twice, passes the
// suite the cluster's database passes too.
func TestFilesDir(t *testing.T) {
	dir := t.TempDir()
	a, err := incident.NewFiles(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := incident.NewFiles(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunFiles(t, a, b)
}
