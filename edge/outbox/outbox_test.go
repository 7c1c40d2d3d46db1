package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/semko/semko/protocol"
)

func payload(seq uint64) ([]byte, error) { return fmt.Appendf(nil, `{"seq":%d}`, seq), nil }

func mustOpen(t *testing.T, dir string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func appendN(t *testing.T, o *Outbox, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range n {
		seq, err := o.Append(protocol.KindVote, payload)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func pendingSeqs(o *Outbox) []uint64 {
	var s []uint64
	for _, e := range o.Pending(1 << 20) {
		s = append(s, e.Seq)
	}
	return s
}

func TestAppendAckReopen(t *testing.T) {
	tests := []struct {
		name     string
		appends  int
		acks     []uint64
		wantPend []uint64
		segBytes int64
	}{
		{name: "nothing acked", appends: 3, wantPend: []uint64{1, 2, 3}},
		{name: "in order", appends: 4, acks: []uint64{1, 2}, wantPend: []uint64{3, 4}},
		{name: "out of order", appends: 4, acks: []uint64{3, 1}, wantPend: []uint64{2, 4}},
		{name: "all acked", appends: 3, acks: []uint64{1, 2, 3}},
		{name: "unknown and repeated acks", appends: 2, acks: []uint64{2, 2, 99, 0}, wantPend: []uint64{1}},
		{name: "small segments", appends: 50, acks: seqRange(1, 45), wantPend: seqRange(46, 50), segBytes: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: tt.segBytes}
			o := mustOpen(t, dir, opts)
			appendN(t, o, tt.appends)
			for _, a := range tt.acks {
				if err := o.Ack(a); err != nil {
					t.Fatalf("ack %d: %v", a, err)
				}
			}
			check := func(o *Outbox) {
				t.Helper()
				if got := pendingSeqs(o); fmt.Sprint(got) != fmt.Sprint(tt.wantPend) {
					t.Fatalf("pending %v, want %v", got, tt.wantPend)
				}
				if o.Len() != len(tt.wantPend) {
					t.Fatalf("len %d, want %d", o.Len(), len(tt.wantPend))
				}
				if got, want := o.NextSeq(), uint64(tt.appends+1); got != want {
					t.Fatalf("next seq %d, want %d", got, want)
				}
			}
			check(o)
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			o2 := mustOpen(t, dir, opts)
			check(o2)
			for _, e := range o2.Pending(10) {
				want, _ := payload(e.Seq)
				if !bytes.Equal(e.Data, want) || e.Kind != protocol.KindVote {
					t.Fatalf("entry %d: kind %q data %q", e.Seq, e.Kind, e.Data)
				}
			}
		})
	}
}

func seqRange(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestSegmentsDeletedWhenAcked(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{SegmentBytes: 200})
	seqs := appendN(t, o, 40)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 5 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	for _, s := range seqs {
		if err := o.Ack(s); err != nil {
			t.Fatal(err)
		}
	}
	// One more append rotates away the fully acked active segment.
	for range 10 {
		appendN(t, o, 1)
		o.Ack(o.NextSeq() - 1)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) > 2 {
		t.Fatalf("acked segments kept: %v", segs)
	}
	o.Close()
	o2 := mustOpen(t, dir, Options{SegmentBytes: 200})
	if o2.NextSeq() != 51 || o2.Len() != 0 {
		t.Fatalf("after reopen next %d len %d", o2.NextSeq(), o2.Len())
	}
}

func TestErrFull(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{MaxBytes: 1000, SegmentBytes: 300})
	var n int
	for {
		_, err := o.Append(protocol.KindVote, payload)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n > 1000 {
			t.Fatal("never full")
		}
	}
	if o.Len() != n {
		t.Fatalf("len %d after %d appends", o.Len(), n)
	}
	next := o.NextSeq()
	// Full does not consume a sequence number.
	if next != uint64(n+1) {
		t.Fatalf("next %d", next)
	}
	for _, e := range o.Pending(n) {
		if err := o.Ack(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.Append(protocol.KindVote, payload); err != nil {
		t.Fatalf("append after acks: %v", err)
	}
}

func TestBuildErrorWritesNothing(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{})
	boom := errors.New("boom")
	if _, err := o.Append(protocol.KindVote, func(uint64) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if seq := appendN(t, o, 1)[0]; seq != 1 {
		t.Fatalf("seq %d, want 1", seq)
	}
}

// TestTornTail cuts the last record at every byte offset, as a power cut
// during the write would, and checks that recovery keeps everything before
// it and the outbox keeps working.
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	o := mustOpen(t, src, Options{})
	appendN(t, o, 3)
	o.Ack(1)
	o.Close()
	segs, _ := filepath.Glob(filepath.Join(src, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	full, _ := os.ReadFile(segs[0])
	acks, _ := os.ReadFile(filepath.Join(src, ackFile))
	_, n1, _ := decodeRecord(full)
	_, n2, _ := decodeRecord(full[n1:])
	lastStart := n1 + n2
	for cut := lastStart; cut < len(full); cut++ {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, filepath.Base(segs[0])), full[:cut], 0o640)
			os.WriteFile(filepath.Join(dir, ackFile), acks, 0o640)
			o := mustOpen(t, dir, Options{})
			if got := fmt.Sprint(pendingSeqs(o)); got != "[2]" {
				t.Fatalf("pending %s, want [2]", got)
			}
			if seq := appendN(t, o, 1)[0]; seq != 3 {
				t.Fatalf("next seq %d, want 3", seq)
			}
			o.Close()
			o = mustOpen(t, dir, Options{})
			if got := fmt.Sprint(pendingSeqs(o)); got != "[2 3]" {
				t.Fatalf("after append and reopen: pending %s", got)
			}
		})
	}
}

func TestGarbageTailIsCut(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{})
	appendN(t, o, 2)
	o.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 20, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	f.Close()
	o = mustOpen(t, dir, Options{})
	if got := fmt.Sprint(pendingSeqs(o)); got != "[1 2]" {
		t.Fatalf("pending %s", got)
	}
}

func TestClosed(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{})
	o.Close()
	if _, err := o.Append(protocol.KindVote, payload); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := o.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("ack after close: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, e := range []Entry{
		{Seq: 1, Kind: protocol.KindVote, Data: []byte(`{"v":1}`)},
		{Seq: 1 << 40, Kind: protocol.KindActivation},
		{Seq: 7, Kind: "", Data: []byte{0, 1, 2}},
	} {
		rec := appendRecord(nil, e)
		f.Add(rec)
		f.Add(rec[:len(rec)-1])
	}
	f.Add([]byte{0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errTorn) && !errors.Is(err, errCorrupt) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n > len(b) || n < headerLen+minBody {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		if re := appendRecord(nil, e); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b[:n])
		}
	})
}
