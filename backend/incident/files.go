package incident

import (
	"bytes"
	"context"
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

// Files keeps attachments, each under the hex SHA-256 of its content: the
// same scan attached twice is kept once, and a file's name can never be
// chosen by whoever uploads it. Where the bytes live is its Blobs: a
// directory on one machine (NewFiles), the shared database in a cluster
// (incident/postgres), so any replica serves a file another one took.
type Files struct {
	blobs Blobs
	max   int64
}

// Blobs holds attachment contents by hash. Hashes given to it are checked
// already (64 lower-case hex digits).
type Blobs interface {
	// Store keeps data under hash unless it is there; created reports
	// whether it was new. Two replicas storing one hash at once create
	// it once.
	Store(ctx context.Context, hash string, data []byte) (created bool, err error)
	// Open returns the content of hash, ErrNotFound if none.
	Open(ctx context.Context, hash string) (io.ReadCloser, error)
	// Remove deletes hash's content.
	Remove(ctx context.Context, hash string) error
}

// NewFiles keeps attachments in dir (created if need be); max bounds one
// file.
func NewFiles(dir string, max int64) (*Files, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("incident files: %w", err)
	}
	return NewFilesIn(dirBlobs(dir), max), nil
}

// NewFilesIn keeps attachments in b; max bounds one file.
func NewFilesIn(b Blobs, max int64) *Files { return &Files{blobs: b, max: max} }

// accepted are the types a scan may have, by the content's own signature
// (http.DetectContentType), never by the name or a client's header.
var accepted = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "application/pdf": true}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Put reads one file (at most max bytes; more is ErrTooLarge), checks its
// type (ErrFileType), reads an image's resolution, and stores it. Nothing
// is written for a refused file. created says the content was new, so a
// caller whose request then fails may Remove it again.
func (f *Files) Put(ctx context.Context, name string, r io.Reader) (a Attachment, created bool, err error) {
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
	created, err = f.blobs.Store(ctx, a.Hash, data)
	if err != nil {
		return Attachment{}, false, fmt.Errorf("store attachment: %w", err)
	}
	return a, created, nil
}

// Remove deletes a stored file (after a refused request that created it).
func (f *Files) Remove(ctx context.Context, hash string) error {
	if !hashPattern.MatchString(hash) {
		return ErrNotFound
	}
	return f.blobs.Remove(ctx, hash)
}

// Max is the largest file Put takes.
func (f *Files) Max() int64 { return f.max }

// Open returns the stored file of hash.
func (f *Files) Open(ctx context.Context, hash string) (io.ReadCloser, error) {
	if !hashPattern.MatchString(hash) {
		return nil, ErrNotFound
	}
	return f.blobs.Open(ctx, hash)
}

// dirBlobs keeps each content in a file of the directory named by its
// hash, written to a temporary file, synced and linked into place, so a
// crash leaves either the whole file or none. The link fails when the
// name exists, so of two uploads of one scan at once one creates it.
type dirBlobs string

func (d dirBlobs) Store(_ context.Context, hash string, data []byte) (bool, error) {
	path := filepath.Join(string(d), hash)
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	tmp, err := os.CreateTemp(string(d), "upload-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	switch err := os.Link(tmp.Name(), path); {
	case errors.Is(err, os.ErrExist):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (d dirBlobs) Open(_ context.Context, hash string) (io.ReadCloser, error) {
	fh, err := os.Open(filepath.Join(string(d), hash))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return fh, err
}

func (d dirBlobs) Remove(_ context.Context, hash string) error {
	return os.Remove(filepath.Join(string(d), hash))
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
