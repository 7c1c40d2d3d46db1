package fleetdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/semko/semko/fleet/devconfig"
)

// Counter is one counter with its assignments.
type Counter struct {
	ID       string `json:"id"`
	Site     string `json:"site"`
	Org      string `json:"org"`
	Name     string `json:"name,omitempty"`
	Device   string `json:"device,omitempty"`
	Operator string `json:"operator,omitempty"`
	Service  string `json:"service,omitempty"`
}

// CounterPatch changes a counter's assignments; nil fields stay, "" clears.
// A new Site creates the counter when it does not exist yet.
type CounterPatch struct {
	Site     *string `json:"site,omitempty"`
	Name     *string `json:"name,omitempty"`
	Device   *string `json:"device,omitempty"`
	Operator *string `json:"operator,omitempty"`
	Service  *string `json:"service,omitempty"`
}

// Counters lists every counter, ordered by id.
func (db *DB) Counters(ctx context.Context) ([]Counter, error) {
	out := []Counter{}
	err := eachRow(ctx, db.sql, `SELECT c.id, c.site, COALESCE(s.org, ''), c.name, COALESCE(c.device, ''), c.operator, c.service
		FROM counters c LEFT JOIN sites s ON s.id = c.site ORDER BY c.id`, func(r *sql.Rows) error {
		var c Counter
		err := r.Scan(&c.ID, &c.Site, &c.Org, &c.Name, &c.Device, &c.Operator, &c.Service)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	return out, nil
}

// PutCounter creates or changes a counter. Creating one needs Site.
// Assigning Device moves that keypad here.
func (db *DB) PutCounter(ctx context.Context, id string, p CounterPatch) error {
	now := db.opts.Now()
	return db.change(ctx, func(tx *tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM counters WHERE id=?`, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if p.Site == nil || *p.Site == "" {
				return fmt.Errorf("counter %q: %w (give a site to create it)", id, ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO counters(id, site) VALUES(?, ?)`, id, *p.Site); err != nil {
				return fmt.Errorf("insert counter: %w", err)
			}
		}
		if p.Site != nil {
			if err := mustExist(ctx, tx, "sites", "site", *p.Site); err != nil {
				return err
			}
		}
		for col, v := range map[string]*string{"site": p.Site, "name": p.Name, "operator": p.Operator, "service": p.Service} {
			if v == nil {
				continue
			}
			// col comes from the fixed map above, never from the request.
			if _, err := tx.ExecContext(ctx, `UPDATE counters SET `+col+`=? WHERE id=?`, *v, id); err != nil {
				return fmt.Errorf("update counter %s: %w", col, err)
			}
		}
		if p.Device == nil {
			return nil
		}
		if *p.Device == "" {
			var prev sql.NullString
			if err := tx.QueryRowContext(ctx, `SELECT device FROM counters WHERE id=?`, id).Scan(&prev); err != nil {
				return err
			}
			if !prev.Valid {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=NULL WHERE id=?`, id); err != nil {
				return err
			}
			return event(ctx, tx, now, prev.String, "unplace", id)
		}
		var retired string
		err := tx.QueryRowContext(ctx, `SELECT retired FROM devices WHERE id=?`, *p.Device).Scan(&retired)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %q: %w", *p.Device, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if retired != "" {
			return fmt.Errorf("%w: device %q is retired", ErrInvalid, *p.Device)
		}
		return place(ctx, tx, now, *p.Device, id)
	})
}

func mustExist(ctx context.Context, tx *tx, table, what, id string) error {
	var n int
	// table comes from the callers' constants, never from a request.
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE id=?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
	}
	return nil
}

// PutOperator creates or renames an operator of organisation org.
func (db *DB) PutOperator(ctx context.Context, id, name, org string) error {
	return db.change(ctx, func(tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO operators(id, name, org) VALUES(?,?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name, org=excluded.org`, id, name, org)
		return err
	})
}

// PutService creates or renames a service.
func (db *DB) PutService(ctx context.Context, id, name string) error {
	return db.change(ctx, func(tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO services(id, name) VALUES(?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name`, id, name)
		return err
	})
}

// Level is where a config override applies.
type Level string

// Levels of config overrides, from the most general.
const (
	LevelOrg    Level = "org"
	LevelSite   Level = "site"
	LevelDevice Level = "device"
)

func (l Level) table() (string, error) {
	switch l {
	case LevelOrg:
		return "orgs", nil
	case LevelSite:
		return "sites", nil
	case LevelDevice:
		return "devices", nil
	}
	return "", fmt.Errorf("%w: level %q is not org, site or device", ErrInvalid, l)
}

// Override returns the override declared at one level for id; nil when
// there is none.
func (db *DB) Override(ctx context.Context, level Level, id string) (*devconfig.Override, error) {
	table, err := level.table()
	if err != nil {
		return nil, err
	}
	var cfg sql.NullString
	// table comes from Level.table, never from the request.
	err = db.sql.QueryRowContext(ctx, `SELECT config FROM `+table+` WHERE id=?`, id).Scan(&cfg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", level, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read override: %w", err)
	}
	return parseOverride(cfg)
}

// SetOverride replaces the override at one level (nil or empty removes it).
// It is refused, wrapping ErrInvalid and devconfig.ErrInvalidOverride, when
// it or the configuration of any device it reaches would be invalid.
func (db *DB) SetOverride(ctx context.Context, level Level, id string, o *devconfig.Override) error {
	table, err := level.table()
	if err != nil {
		return err
	}
	if err := devconfig.Check(o); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrInvalid, level, id, err)
	}
	return db.change(ctx, func(tx *tx) error {
		if err := mustExist(ctx, tx, table, string(level), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET config=? WHERE id=?`, overrideText(o), id)
		return err
	})
}
