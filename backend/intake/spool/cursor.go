package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The cursor file holds the committed Position: Seq, segment id and end
// offset (8 bytes each, little endian) and a CRC32C of those 24 bytes. It is
// replaced atomically: written to a temporary file, fsynced, renamed over
// the old one, and the directory fsynced.
const (
	cursorName = "cursor"
	cursorLen  = 28
)

func writeCursor(dir string, p Position) error {
	var b [cursorLen]byte
	binary.LittleEndian.PutUint64(b[0:], p.Seq)
	binary.LittleEndian.PutUint64(b[8:], p.seg)
	binary.LittleEndian.PutUint64(b[16:], uint64(p.end))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	tmp := filepath.Join(dir, cursorName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return fmt.Errorf("write cursor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write cursor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, cursorName)); err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	return nil
}

// readCursor returns the committed position; found is false when no cursor
// was ever written.
func readCursor(dir string) (p Position, found bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("read cursor: %w", err)
	}
	if len(b) != cursorLen || crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return Position{}, false, errors.New("read cursor: damaged cursor file")
	}
	p = Position{
		Seq: binary.LittleEndian.Uint64(b[0:]),
		seg: binary.LittleEndian.Uint64(b[8:]),
		end: int64(binary.LittleEndian.Uint64(b[16:])),
	}
	if p.end < segHeaderLen || p.seg > p.Seq {
		return Position{}, false, errors.New("read cursor: inconsistent cursor file")
	}
	return p, true, nil
}
