package fleetdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/semko/semko/fleet/devconfig"
	"github.com/semko/semko/fleet/registry"
	"github.com/semko/semko/protocol"
)

// Device states.
const (
	StateActive  = "active"
	StateRetired = "retired"
)

// Device is one keypad as support sees it. The secret hash is never shown.
type Device struct {
	ID        string              `json:"id"`
	State     string              `json:"state"` // StateActive or StateRetired
	Model     string              `json:"model,omitempty"`
	Serial    string              `json:"serial,omitempty"`
	FW        string              `json:"fw,omitempty"`
	Installed string              `json:"installed,omitempty"` // YYYY-MM-DD
	Retired   string              `json:"retired,omitempty"`   // RFC 3339, when retired
	Placement registry.Placement  `json:"placement"`
	Config    *devconfig.Override `json:"config,omitempty"` // the device's own override
}

// NewDevice is a device to add. Counter may be empty (not installed yet);
// when the counter has a keypad already, that one is taken off it (it stays
// active, unplaced: retire it when it is replaced for good).
type NewDevice struct {
	ID        string              `json:"id"`
	Model     string              `json:"model,omitempty"`
	Serial    string              `json:"serial,omitempty"`
	FW        string              `json:"fw,omitempty"`
	Installed string              `json:"installed,omitempty"` // YYYY-MM-DD; default: the day it is first placed
	Counter   string              `json:"counter,omitempty"`
	Config    *devconfig.Override `json:"config,omitempty"`
}

// DevicePatch changes a device; nil fields stay. Counter "" takes the device
// off its counter; State StateRetired retires it.
type DevicePatch struct {
	Model     *string `json:"model,omitempty"`
	Serial    *string `json:"serial,omitempty"`
	FW        *string `json:"fw,omitempty"`
	Installed *string `json:"installed,omitempty"`
	Counter   *string `json:"counter,omitempty"`
	State     *string `json:"state,omitempty"`
}

const deviceSelect = `SELECT d.id, d.model, d.serial, d.fw, d.installed, d.retired, d.config,
	COALESCE(c.id, ''), COALESCE(s.id, ''), COALESCE(s.org, ''), COALESCE(c.operator, ''), COALESCE(c.service, '')
	FROM devices d LEFT JOIN counters c ON c.device = d.id LEFT JOIN sites s ON s.id = c.site`

func scanDevice(r interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var cfg sql.NullString
	p := &d.Placement
	if err := r.Scan(&d.ID, &d.Model, &d.Serial, &d.FW, &d.Installed, &d.Retired, &cfg,
		&p.Counter, &p.Site, &p.Org, &p.Operator, &p.Service); err != nil {
		return d, err
	}
	d.State = StateActive
	if d.Retired != "" {
		d.State = StateRetired
	}
	var err error
	d.Config, err = parseOverride(cfg)
	return d, err
}

// Devices lists every device, retired ones included, ordered by id.
func (db *DB) Devices(ctx context.Context) ([]Device, error) {
	out := []Device{}
	err := eachRow(ctx, db.sql, deviceSelect+` ORDER BY d.id`, func(r *sql.Rows) error {
		d, err := scanDevice(r)
		out = append(out, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// Device returns one device; the error wraps ErrNotFound for an unknown id.
func (db *DB) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(db.sql.QueryRowContext(ctx, deviceSelect+` WHERE d.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// AddDevice adds a device with a freshly generated secret, which it returns:
// the only time the secret is ever shown; the database keeps its hash. The
// device may connect as soon as AddDevice returns (OnChange has run).
func (db *DB) AddDevice(ctx context.Context, nd NewDevice) (secret string, err error) {
	if err := protocol.ValidateDeviceID(nd.ID); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if nd.Installed == "" && nd.Counter != "" {
		nd.Installed = db.opts.Now().UTC().Format(time.DateOnly)
	}
	if err := checkDate(nd.Installed); err != nil {
		return "", err
	}
	secret = newSecret()
	hash, err := db.opts.HashSecret(secret)
	if err != nil {
		return "", fmt.Errorf("hash secret: %w", err)
	}
	err = db.change(ctx, func(tx *tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE id=?`, nd.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("device %q: %w", nd.ID, ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices(id, secret_hash, model, serial, fw, installed, config)
			VALUES(?,?,?,?,?,?,?)`, nd.ID, hash, nd.Model, nd.Serial, nd.FW, nd.Installed, overrideText(nd.Config)); err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		if err := event(ctx, tx, db.opts.Now(), nd.ID, "add", nd.Counter); err != nil {
			return err
		}
		if nd.Counter != "" {
			return place(ctx, tx, db.opts.Now(), nd.ID, nd.Counter)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	db.log.Info("device added", "device", nd.ID, "counter", nd.Counter)
	return secret, nil
}

// UpdateDevice changes a device; moving it is a Counter change (the keypad
// previously at the new counter, if any, is taken off it).
func (db *DB) UpdateDevice(ctx context.Context, id string, p DevicePatch) error {
	if p.Installed != nil {
		if err := checkDate(*p.Installed); err != nil {
			return err
		}
	}
	if p.State != nil && *p.State != StateActive && *p.State != StateRetired {
		return fmt.Errorf("%w: state %q is neither %s nor %s", ErrInvalid, *p.State, StateActive, StateRetired)
	}
	now := db.opts.Now()
	return db.change(ctx, func(tx *tx) error {
		var retired string
		err := tx.QueryRowContext(ctx, `SELECT retired FROM devices WHERE id=?`, id).Scan(&retired)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		for col, v := range map[string]*string{"model": p.Model, "serial": p.Serial, "fw": p.FW, "installed": p.Installed} {
			if v == nil {
				continue
			}
			// col comes from the fixed map above, never from the request.
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET `+col+`=? WHERE id=?`, *v, id); err != nil {
				return fmt.Errorf("update %s: %w", col, err)
			}
		}
		if p.State != nil {
			switch {
			case *p.State == StateRetired && retired == "":
				return retire(ctx, tx, now, id)
			case *p.State == StateActive && retired != "":
				if _, err := tx.ExecContext(ctx, `UPDATE devices SET retired='' WHERE id=?`, id); err != nil {
					return err
				}
				if err := event(ctx, tx, now, id, "reactivate", ""); err != nil {
					return err
				}
				retired = ""
			}
		}
		if p.Counter != nil {
			if retired != "" {
				return fmt.Errorf("%w: device %q is retired", ErrInvalid, id)
			}
			if *p.Counter == "" {
				if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=NULL WHERE device=?`, id); err != nil {
					return err
				}
				return event(ctx, tx, now, id, "unplace", "")
			}
			return place(ctx, tx, now, id, *p.Counter)
		}
		return nil
	})
}

// RetireDevice retires a device: it leaves its counter, its credentials stop
// working and its retained config is cleared. The record stays (ids are not
// reused); UpdateDevice with State active brings it back.
func (db *DB) RetireDevice(ctx context.Context, id string) error {
	s := StateRetired
	return db.UpdateDevice(ctx, id, DevicePatch{State: &s})
}

func retire(ctx context.Context, tx *tx, now time.Time, id string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=NULL WHERE device=?`, id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET retired=? WHERE id=?`, now.UTC().Format(time.RFC3339), id); err != nil {
		return err
	}
	return event(ctx, tx, now, id, "retire", "")
}

// place puts device at counter, taking it off its previous counter and
// taking the counter's previous keypad off.
func place(ctx context.Context, tx *tx, now time.Time, device, counter string) error {
	var prev sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT device FROM counters WHERE id=?`, counter).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("counter %q: %w", counter, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if prev.String == device {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=NULL WHERE device=?`, device); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET device=? WHERE id=?`, device, counter); err != nil {
		return err
	}
	// Warranty and service life count from the installation: a device
	// placed for the first time without a date is installed today.
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET installed=? WHERE id=? AND installed=''`,
		now.UTC().Format(time.DateOnly), device); err != nil {
		return err
	}
	if prev.Valid {
		if err := event(ctx, tx, now, prev.String, "replaced", "by "+device+" at "+counter); err != nil {
			return err
		}
	}
	return event(ctx, tx, now, device, "place", counter)
}

func event(ctx context.Context, tx *tx, now time.Time, device, action, detail string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events(at, device, action, detail) VALUES(?,?,?,?)`,
		now.UTC().Format(time.RFC3339Nano), device, action, detail)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

func checkDate(s string) error {
	if s == "" {
		return nil
	}
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return fmt.Errorf("%w: installed %q is not a date YYYY-MM-DD", ErrInvalid, s)
	}
	return nil
}

// Event is one entry of a device's history.
type Event struct {
	At     string `json:"at"`
	Device string `json:"device"`
	Action string `json:"action"` // add, place, unplace, replaced, retire, reactivate
	Detail string `json:"detail,omitempty"`
}

// History returns a device's events, oldest first, at most limit.
func (db *DB) History(ctx context.Context, device string, limit int) ([]Event, error) {
	out := []Event{}
	err := eachRow(ctx, db.sql, `SELECT at, device, action, detail FROM events WHERE device=? ORDER BY seq LIMIT ?`,
		func(r *sql.Rows) error {
			var e Event
			err := r.Scan(&e.At, &e.Device, &e.Action, &e.Detail)
			out = append(out, e)
			return err
		}, device, limit)
	if err != nil {
		return nil, fmt.Errorf("device history: %w", err)
	}
	return out, nil
}
