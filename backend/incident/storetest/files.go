package storetest

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"sync"
	"testing"

	"github.com/semko/semko/backend/incident"
)

// RunFiles checks attachment files kept in the Blobs behind files and
// other, two views of one store (as two replicas of a cluster, or one
// directory opened twice). files.Max must exceed a 640x480 PNG.
func RunFiles(t *testing.T, files, other *incident.Files) {
	ctx := context.Background()
	scan := pngOf(t, 640, 480)

	// Eight uploads of one scan at once, through both views: one creates.
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	var hash string
	for i := range 8 {
		f := files
		if i%2 == 1 {
			f = other
		}
		wg.Go(func() {
			a, isNew, err := f.Put(ctx, "../../scan.png", bytes.NewReader(scan))
			if err != nil {
				t.Errorf("put: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			hash = a.Hash
			if isNew {
				created++
			}
			if a.Name != "scan.png" || a.Type != "image/png" || a.Width != 640 || a.Height != 480 || a.Size != int64(len(scan)) {
				t.Errorf("attachment %+v", a)
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d of 8 uploads of one scan created it, want 1", created)
	}

	// Either view reads what the other stored, byte for byte.
	for _, f := range []*incident.Files{files, other} {
		rc, err := f.Open(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, scan) {
			t.Fatalf("read back %d bytes (%v), want the %d stored", len(got), err, len(scan))
		}
	}

	// Refused: too large, not an image or PDF; nothing is stored.
	if _, _, err := files.Put(ctx, "big.png", bytes.NewReader(make([]byte, files.Max()+1))); !errors.Is(err, incident.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, _, err := files.Put(ctx, "x.html", bytes.NewReader([]byte("<html><script>alert(1)</script>"))); !errors.Is(err, incident.ErrFileType) {
		t.Fatalf("html: %v", err)
	}

	// Removed through one view: gone for the other; a malformed hash is
	// never looked up.
	if err := other.Remove(ctx, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := files.Open(ctx, hash); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("open after remove: %v", err)
	}
	if _, err := files.Open(ctx, "../etc/passwd"); !errors.Is(err, incident.ErrNotFound) {
		t.Fatalf("open of a path: %v", err)
	}
	// Stored again after removal: new again.
	if _, isNew, err := files.Put(ctx, "scan.png", bytes.NewReader(scan)); err != nil || !isNew {
		t.Fatalf("put after remove: new=%v, %v", isNew, err)
	}
}

// pngOf encodes a w x h image with some content in it.
func pngOf(t *testing.T, w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
