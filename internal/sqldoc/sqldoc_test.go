package sqldoc_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/semko/semko/internal/sqldoc"
	"github.com/semko/semko/internal/sqlitedb"
)

type rec struct {
	N int `json:"n"`
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "t.db"), `CREATE TABLE docs (id INTEGER PRIMARY KEY, doc BLOB NOT NULL)`, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO docs (id, doc) VALUES (1, '{"n":1}'), (2, '{"n":2}'), (3, 'not json')`); err != nil {
		t.Fatal(err)
	}
	got, err := sqldoc.Query[rec](ctx, db, "docs", `SELECT doc FROM docs WHERE id < ? ORDER BY id`, 3)
	if err != nil || len(got) != 2 || got[0].N != 1 || got[1].N != 2 {
		t.Fatalf("got %v, %v; want [{1} {2}]", got, err)
	}
	// A bad document is an error naming the records, never skipped.
	if _, err := sqldoc.Query[rec](ctx, db, "docs", `SELECT doc FROM docs ORDER BY id`); err == nil || !strings.HasPrefix(err.Error(), "decode docs:") {
		t.Fatalf("bad document: err %v, want decode docs: ...", err)
	}
	if _, err := sqldoc.Query[rec](ctx, db, "docs", `SELECT doc FROM nowhere`); err == nil || !strings.HasPrefix(err.Error(), "query docs:") {
		t.Fatalf("bad query: err %v, want query docs: ...", err)
	}
	if got, err := sqldoc.Query[rec](ctx, db, "docs", `SELECT doc FROM docs WHERE id > 9`); err != nil || len(got) != 0 {
		t.Fatalf("no rows: %v, %v", got, err)
	}
}
