package incident

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // scans and photos arrive as GIF, JPEG or PNG
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Files keeps attachments in a directory, each under the hex SHA-256 of
// its content: the same scan attached twice is one file, and a file's
// name can never be chosen by whoever uploads it.
type Files struct {
	dir string
	max int64
}

// NewFiles opens (creates) dir; max bounds one file.
func NewFiles(dir string, max int64) (*Files, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("incident files: %w", err)
	}
	return &Files{dir: dir, max: max}, nil
}

// accepted are the types a scan may have, by the content's own signature
// (http.DetectContentType), never by the name or a client's header.
var accepted = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "application/pdf": true}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Put reads one file (at most max bytes; more is ErrTooLarge), checks its
// type (ErrFileType), reads an image's resolution, and stores it. Nothing
// is written for a refused file. created says the content was new, so a
// caller whose request then fails may Remove it again.
func (f *Files) Put(name string, r io.Reader) (a Attachment, created bool, err error) {
	data, err := io.ReadAll(io.LimitReader(r, f.max+1))
	if err != nil {
		return Attachment{}, false, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if int64(len(data)) > f.max {
		return Attachment{}, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, f.max)
	}
	if a, err = describe(data); err != nil {
		return Attachment{}, false, err
	}
	a.Name = cleanFileName(name)
	path := filepath.Join(f.dir, a.Hash)
	if _, err := os.Stat(path); err == nil {
		return a, false, nil
	}
	return a, true, f.write(path, data)
}

// Remove deletes a stored file (after a refused request that created it).
func (f *Files) Remove(hash string) error {
	if !hashPattern.MatchString(hash) {
		return ErrNotFound
	}
	return os.Remove(filepath.Join(f.dir, hash))
}

// Max is the largest file Put takes.
func (f *Files) Max() int64 { return f.max }

func (f *Files) write(path string, data []byte) error {
	tmp, err := os.CreateTemp(f.dir, "upload-*")
	if err != nil {
		return fmt.Errorf("store attachment: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("store attachment: %w", err)
	}
	return nil
}

// describe sniffs the type and an image's size. A file that claims to be
// an image but does not decode is refused: a preview would fail too.
func describe(data []byte) (Attachment, error) {
	sum := sha256.Sum256(data)
	a := Attachment{Hash: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	a.Type = http.DetectContentType(data)
	if !accepted[a.Type] {
		return Attachment{}, fmt.Errorf("%w: %s (images and PDF only)", ErrFileType, a.Type)
	}
	if strings.HasPrefix(a.Type, "image/") {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return Attachment{}, fmt.Errorf("%w: image does not decode: %v", ErrFileType, err)
		}
		a.Width, a.Height = cfg.Width, cfg.Height
	}
	return a, nil
}

// Open returns the stored file of hash.
func (f *Files) Open(hash string) (*os.File, error) {
	if !hashPattern.MatchString(hash) {
		return nil, ErrNotFound
	}
	fh, err := os.Open(filepath.Join(f.dir, hash))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return fh, err
}

// cleanFileName keeps the base name, without path or control characters,
// for display and downloads.
func cleanFileName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '"' || r == '/' {
			return -1
		}
		return r
	}, name)
	if name == "." || name == "" {
		name = "attachment"
	}
	if len(name) > 120 {
		name = name[:120]
	}
	return name
}
