package spool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func open(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(i int) []byte { return []byte("record-" + strconv.Itoa(i)) }

func appendN(t testing.TB, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// readAll reads until Read returns nothing.
func readAll(t testing.TB, s *Spool) []Record {
	t.Helper()
	var all []Record
	for {
		recs, err := s.Read(100, 1<<20)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
	}
}

func datas(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func want(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = string(rec(from + i))
	}
	return out
}

func TestAppendReadCommitReopen(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
	}{
		{"one segment", 0},
		{"many segments", 100}, // a few records per segment
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: tc.segmentBytes}
			s := open(t, dir, opts)
			appendN(t, s, 0, 50)
			got := readAll(t, s)
			if !slices.Equal(datas(got), want(0, 50)) {
				t.Fatalf("read %q", datas(got))
			}
			for i, r := range got {
				if r.ID.Seq != uint64(i+1) {
					t.Fatalf("record %d has Seq %d", i, r.ID.Seq)
				}
			}
			if err := s.Commit(got[19].ID); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.PendingRecords != 30 || st.Committed != 20 {
				t.Fatalf("stats after commit: %+v", st)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open(t, dir, opts)
			if st := s.Stats(); st.PendingRecords != 30 {
				t.Fatalf("pending after reopen: %d", st.PendingRecords)
			}
			got = readAll(t, s)
			if !slices.Equal(datas(got), want(20, 30)) {
				t.Fatalf("after reopen read %q", datas(got))
			}
			if got[0].ID.Seq != 21 {
				t.Fatalf("Seq after reopen %d, want 21", got[0].ID.Seq)
			}
			appendN(t, s, 50, 5)
			more := readAll(t, s)
			if !slices.Equal(datas(more), want(50, 5)) || more[0].ID.Seq != 51 {
				t.Fatalf("appended after reopen: %q seq %d", datas(more), more[0].ID.Seq)
			}
			if err := s.Commit(more[4].ID); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.PendingRecords != 0 || st.PendingBytes != 0 || !st.OldestPending.IsZero() {
				t.Fatalf("stats after committing all: %+v", st)
			}
			if st.Segments != 1 {
				t.Fatalf("%d segments left after committing all", st.Segments)
			}
			if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 1 {
				t.Fatalf("segment files left: %v", segs)
			}
		})
	}
}

func TestRewindHandsOutAgain(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 64})
	appendN(t, s, 0, 10)
	first, _ := s.Read(4, 1<<20)
	if err := s.Commit(first[1].ID); err != nil {
		t.Fatal(err)
	}
	_ = readAll(t, s)
	s.Rewind()
	if got := datas(readAll(t, s)); !slices.Equal(got, want(2, 8)) {
		t.Fatalf("after rewind read %q", got)
	}
}

func TestReadLimits(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	big := bytes.Repeat([]byte("x"), 1000)
	for range 3 {
		if err := s.Append(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		maxRecords, maxBytes, want int
	}{
		{10, 10, 1},   // one record even if larger than maxBytes
		{10, 2000, 2}, // byte budget
		{1, 1 << 20, 1},
		{10, 1 << 20, 3},
	}
	for _, tc := range tests {
		s.Rewind()
		got, err := s.Read(tc.maxRecords, tc.maxBytes)
		if err != nil || len(got) != tc.want {
			t.Errorf("Read(%d, %d) = %d records, %v; want %d", tc.maxRecords, tc.maxBytes, len(got), err, tc.want)
		}
	}
}

func TestGroupCommitConcurrentFIFO(t *testing.T) {
	const writers, each = 200, 50
	s := open(t, t.TempDir(), Options{SegmentBytes: 32 << 10})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Append(context.Background(), fmt.Appendf(nil, "%d:%d", g, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Drain while appending, committing as we go, like the writer does.
	var got []Record
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-s.Notify():
		}
		recs := readAll(t, s)
		if len(recs) > 0 {
			if err := s.Commit(recs[len(recs)-1].ID); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, recs...)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("read %d records, want %d", len(got), writers*each)
	}
	next := make([]int, writers)
	for i, r := range got {
		if r.ID.Seq != uint64(i+1) {
			t.Fatalf("record %d has Seq %d", i, r.ID.Seq)
		}
		g, n, _ := strings.Cut(string(r.Data), ":")
		gi, _ := strconv.Atoi(g)
		ni, _ := strconv.Atoi(n)
		if ni != next[gi] {
			t.Fatalf("writer %d: got record %d, want %d (FIFO per appender broken)", gi, ni, next[gi])
		}
		next[gi]++
	}
	st := s.Stats()
	if st.Syncs >= st.Appended {
		t.Errorf("no group commit: %d fsyncs for %d records", st.Syncs, st.Appended)
	}
	t.Logf("%d records in %d fsyncs, %d segments left", st.Appended, st.Syncs, st.Segments)
	if st.AppendLatency.Count != writers*each {
		t.Errorf("latency histogram counted %d appends", st.AppendLatency.Count)
	}
}

func TestErrFullAndSpaceFreedByCommit(t *testing.T) {
	r := rec(0)
	limit := 10 * frameSize(len(r))
	s := open(t, t.TempDir(), Options{MaxBytes: limit, SegmentBytes: 3 * frameSize(len(r))})
	for i := range 10 {
		if err := s.Append(context.Background(), r); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := s.Append(context.Background(), r); !errors.Is(err, ErrFull) {
		t.Fatalf("append past MaxBytes: %v, want ErrFull", err)
	}
	// A multi-record append is all or nothing.
	got, _ := s.Read(2, 1<<20)
	if err := s.Commit(got[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), r, r, r); !errors.Is(err, ErrFull) {
		t.Fatalf("3 records into space for 2: %v, want ErrFull", err)
	}
	st := s.Stats()
	if !st.Full || st.Refused != 4 || st.PendingRecords != 8 {
		t.Fatalf("stats: %+v", st)
	}
	if err := s.Append(context.Background(), r, r); err != nil {
		t.Fatalf("append after commit freed space: %v", err)
	}
	rest := readAll(t, s)
	if len(rest) != 10 {
		t.Fatalf("read %d, want 10", len(rest))
	}
	if err := s.Commit(rest[len(rest)-1].ID); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Full || st.PendingBytes != 0 {
		t.Fatalf("after commit: %+v", st)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Append(context.Background(), make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge record: %v", err)
	}
	if err := s.Commit(Position{Seq: 5}); !errors.Is(err, ErrPosition) {
		t.Errorf("made-up position: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, rec(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), rec(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if _, err := s.Read(1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

// lastSegment returns the newest segment file of dir.
func lastSegment(t *testing.T, dir string) string {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	return segs[len(segs)-1]
}

func copyDir(t *testing.T, src string) string {
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestRecoverTornTail cuts the last segment at every byte of its last
// record, as a power cut during the write would, and checks Open keeps
// exactly the records before it, and appends continue cleanly.
func TestRecoverTornTail(t *testing.T) {
	const n = 5
	base := t.TempDir()
	s := open(t, base, Options{})
	appendN(t, s, 0, n)
	recs := readAll(t, s)
	if err := s.Commit(recs[0].ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	lastStart := recs[n-2].ID.end
	lastEnd := recs[n-1].ID.end

	for cut := lastStart; cut <= lastEnd; cut++ {
		dir := copyDir(t, base)
		if err := os.Truncate(lastSegment(t, dir), cut); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		wantN := n - 1 - 1 // minus the torn one, minus the committed one
		if cut == lastEnd {
			wantN = n - 1
		}
		got := datas(readAll(t, s))
		if !slices.Equal(got, want(1, wantN)) {
			t.Fatalf("cut at %d: read %q", cut, got)
		}
		appendN(t, s, 100, 1)
		if got := datas(readAll(t, s)); !slices.Equal(got, want(100, 1)) {
			t.Fatalf("cut at %d: append after recovery read %q", cut, got)
		}
		s.Close()
	}
}

// TestRecoverCorruption flips every byte of a record in a sealed and in the
// last segment: Open must never hand out a damaged record, must keep every
// record before the damage, and the later segments.
func TestRecoverCorruption(t *testing.T) {
	const n = 9
	base := t.TempDir()
	size := frameSize(len(rec(0)))
	s := open(t, base, Options{SegmentBytes: segHeaderLen + 3*size}) // 3 records per segment
	appendN(t, s, 0, n)
	recs := readAll(t, s)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(base, "*.seg"))
	slices.Sort(segs)
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	tests := []struct {
		name   string
		seg    int // which segment
		record int // record index damaged (global)
		want   []string
	}{
		{"sealed segment", 0, 1, append(want(0, 1), want(3, 6)...)},
		{"last segment", 2, 7, want(0, 7)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := recs[tc.record]
			for off := r.ID.end - size; off < r.ID.end; off++ {
				dir := copyDir(t, base)
				path := filepath.Join(dir, filepath.Base(segs[tc.seg]))
				b, _ := os.ReadFile(path)
				b[off] ^= 0x5a
				os.WriteFile(path, b, 0o644)
				s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatalf("damage at %d: Open: %v", off, err)
				}
				if got := datas(readAll(t, s)); !slices.Equal(got, tc.want) {
					t.Fatalf("damage at %d: read %q, want %q", off, got, tc.want)
				}
				s.Close()
			}
		})
	}
}

func TestRecoverTornSegmentHeaderAndBadCursor(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 0, 3)
	recs := readAll(t, s)
	if err := s.Commit(recs[1].ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A segment torn during creation, and a damaged cursor: nothing may be
	// skipped, so every record is handed out again.
	if err := os.WriteFile(filepath.Join(dir, segName(4)), []byte("SEMK"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, cursorName), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{Logger: slog.New(slog.DiscardHandler)})
	if got := datas(readAll(t, s)); !slices.Equal(got, want(0, 3)) {
		t.Fatalf("read %q", got)
	}
	appendN(t, s, 3, 1)
	if got := datas(readAll(t, s)); !slices.Equal(got, want(3, 1)) {
		t.Fatalf("read %q", got)
	}
}

func TestOldestPendingAndNotify(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	if !s.Stats().OldestPending.IsZero() {
		t.Fatal("OldestPending set on an empty spool")
	}
	before := time.Now()
	appendN(t, s, 0, 1)
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after Append")
	}
	st := s.Stats()
	if st.OldestPending.Before(before.Add(-time.Second)) || st.OldestPending.After(time.Now()) {
		t.Fatalf("OldestPending %v, appended at about %v", st.OldestPending, before)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("vote,org=a score=5i 1")))
	f.Add(appendFrame(appendFrame(nil, nil), []byte("x")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufioReader(b)
		var total int
		for {
			p, err := readFrame(br)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errShort) && !errors.Is(err, errCorrupt) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			// Whatever decodes must re-encode to the same bytes.
			enc := appendFrame(nil, p)
			if !bytes.Equal(enc, b[total:total+len(enc)]) {
				t.Fatalf("decoded record does not re-encode to its input")
			}
			total += len(enc)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
