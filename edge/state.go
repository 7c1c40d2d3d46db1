package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/semko/semko/protocol"
)

// Files the agent keeps in Config.DataDir besides the outbox.
const (
	outboxDir  = "outbox"
	bdseqFile  = "bdseq.json"
	configFile = "config.json"
)

type bdseqState struct {
	BDSeq uint64 `json:"bdseq"`
}

// writeFileAtomic replaces path through a synced temporary file and a
// rename, so a crash leaves the old or the new content, never half.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(tmp), err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(tmp), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(tmp), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(tmp), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	return nil
}

func loadBDSeq(dir string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, bdseqFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read bdseq: %w", err)
	}
	var s bdseqState
	if err := json.Unmarshal(data, &s); err != nil {
		return 0, fmt.Errorf("parse bdseq: %w", err)
	}
	return s.BDSeq, nil
}

func saveBDSeq(dir string, seq uint64) error {
	data, _ := json.Marshal(bdseqState{BDSeq: seq})
	return writeFileAtomic(filepath.Join(dir, bdseqFile), data)
}

// loadConfig returns the last applied config, ok false when there is none
// (or it no longer validates: then the defaults are safer than a guess).
func loadConfig(dir string) (protocol.Config, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return protocol.Config{}, false, nil
	}
	if err != nil {
		return protocol.Config{}, false, fmt.Errorf("read config: %w", err)
	}
	c, err := protocol.Decode[protocol.Config](data)
	if err != nil {
		return protocol.Config{}, false, nil
	}
	return c, true, nil
}

func saveConfig(dir string, c protocol.Config) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, configFile), data)
}
