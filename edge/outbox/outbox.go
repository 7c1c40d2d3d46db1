// Package outbox is the edge's durable queue of messages for the backend.
//
// Append writes a record and fsyncs it before it returns, so whoever told
// the keypad "taken" after Append can rely on the vote surviving a power cut.
// Records live in append-only segment files; each carries a sequence number
// that only grows, across restarts too. Ack marks a record as confirmed by
// the broker; a segment whose records are all acknowledged is deleted.
//
// Acks are written without fsync: an ack lost in a crash only means the
// record is published once more, and the backend is idempotent. A record is
// never lost once Append has returned its sequence number.
package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/semko/semko/protocol"
)

// Errors returned by the outbox.
var (
	// ErrFull is returned by Append when the record would take the outbox
	// past Options.MaxBytes. Nothing was written; try again after acks.
	ErrFull = errors.New("outbox full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("outbox closed")
)

// Options tune an outbox. The zero value is usable.
type Options struct {
	// MaxBytes bounds the segments on disk; default 64 MiB.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started; default
	// MaxBytes/16. Smaller segments free acknowledged space sooner.
	SegmentBytes int64
	Logger       *slog.Logger
}

const (
	segSuffix = ".seg"
	ackFile   = "acks.log"
	// ackCompactBytes is the size of the ack log past which it is rewritten
	// with only the acks that still matter.
	ackCompactBytes = 256 << 10
)

type segment struct {
	first uint64 // seq of its first record (also its file name)
	last  uint64 // seq of its last record, first-1 when empty
	size  int64
	live  int // records not yet acknowledged
}

func (s *segment) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", s.first, segSuffix))
}

// Outbox is a durable, bounded, ordered queue. It is safe for concurrent
// use.
type Outbox struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	closed  bool
	segs    []*segment // ordered by first; the last one is written to
	active  *os.File
	acks    *os.File
	ackSize int64
	total   int64           // bytes of all segments
	next    uint64          // seq of the next record
	pending []Entry         // unacknowledged records in seq order (front may hold acked ones, trimmed lazily)
	acked   map[uint64]bool // acked seqs still inside a segment
	buf     []byte
}

// Open opens (creating if needed) the outbox in dir and recovers it: a torn
// last record is cut off and everything before it kept.
func Open(dir string, opts Options) (*Outbox, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = max(opts.MaxBytes/16, 4<<10)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create outbox dir: %w", err)
	}
	o := &Outbox{dir: dir, opts: opts, log: opts.Logger, acked: map[uint64]bool{}, next: 1}
	if err := o.recover(); err != nil {
		o.closeFiles()
		return nil, err
	}
	return o, nil
}

func (o *Outbox) recover() error {
	names, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("list outbox: %w", err)
	}
	for _, de := range names {
		name, ok := strings.CutSuffix(de.Name(), segSuffix)
		if !ok || de.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil || first == 0 {
			o.log.Warn("outbox: ignoring stray file", "file", de.Name())
			continue
		}
		o.segs = append(o.segs, &segment{first: first, last: first - 1})
	}
	sort.Slice(o.segs, func(i, j int) bool { return o.segs[i].first < o.segs[j].first })

	ackSeqs, err := o.readAcks()
	if err != nil {
		return err
	}
	for i, s := range o.segs {
		if err := o.readSegment(s, ackSeqs, i == len(o.segs)-1); err != nil {
			return err
		}
		o.total += s.size
		o.next = max(o.next, s.last+1)
	}
	if len(o.segs) == 0 {
		o.segs = append(o.segs, &segment{first: o.next, last: o.next - 1})
	}
	// Drop fully acknowledged segments except the active one, whose name
	// keeps the sequence counter alive when it is empty.
	for len(o.segs) > 1 && o.segs[0].live == 0 {
		if err := o.removeSegment(o.segs[0]); err != nil {
			return err
		}
	}
	act := o.segs[len(o.segs)-1]
	o.active, err = os.OpenFile(act.path(o.dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	if err := syncDir(o.dir); err != nil {
		return err
	}
	return o.rewriteAcks()
}

// readSegment loads s, cutting it at the first record that does not decode.
func (o *Outbox) readSegment(s *segment, ackSeqs map[uint64]bool, last bool) error {
	path := s.path(o.dir)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	off := 0
	for off < len(data) {
		e, n, err := decodeRecord(data[off:])
		if err == nil && e.Seq <= s.last {
			err = fmt.Errorf("%w: seq %d after %d", errCorrupt, e.Seq, s.last)
		}
		if err != nil {
			lvl := slog.LevelWarn
			if !last || !errors.Is(err, errTorn) {
				// Damage anywhere but a torn tail is worth a louder note.
				lvl = slog.LevelError
			}
			o.log.Log(context.Background(), lvl, "outbox: cutting segment at bad record",
				"segment", filepath.Base(path), "offset", off, "dropped_bytes", len(data)-off, "err", err)
			if err := os.Truncate(path, int64(off)); err != nil {
				return fmt.Errorf("truncate torn segment: %w", err)
			}
			break
		}
		e.Data = slices.Clone(e.Data)
		s.last = e.Seq
		if ackSeqs[e.Seq] {
			o.acked[e.Seq] = true
		} else {
			o.pending = append(o.pending, e)
			s.live++
		}
		off += n
	}
	s.size = int64(off)
	return nil
}

func (o *Outbox) readAcks() (map[uint64]bool, error) {
	path := filepath.Join(o.dir, ackFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[uint64]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open acks: %w", err)
	}
	defer f.Close()
	seqs := map[uint64]bool{}
	r := bufio.NewReader(f)
	var rec [ackLen]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			break // EOF or a torn ack: a lost ack only costs a resend
		}
		seq, ok := decodeAck(rec[:])
		if !ok {
			break
		}
		seqs[seq] = true
	}
	return seqs, nil
}

// rewriteAcks replaces the ack log with the acks that still point into a
// segment, through a temporary file and a rename so a crash leaves either
// the old or the new log.
func (o *Outbox) rewriteAcks() error {
	var buf []byte
	for seq := range o.acked {
		buf = appendAck(buf, seq)
	}
	path := filepath.Join(o.dir, ackFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o640); err != nil {
		return fmt.Errorf("write acks: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace acks: %w", err)
	}
	if o.acks != nil {
		_ = o.acks.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open acks: %w", err)
	}
	o.acks, o.ackSize = f, int64(len(buf))
	return nil
}

// Append stores one record durably and returns its sequence number. build
// gets the number before the record is written, so the payload can carry it
// (Vote.Seq). If build fails, nothing is written and the number is reused.
func (o *Outbox) Append(kind protocol.Kind, build func(seq uint64) ([]byte, error)) (uint64, error) {
	if len(kind) > 255 {
		return 0, fmt.Errorf("append: kind %q too long", kind)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, ErrClosed
	}
	seq := o.next
	data, err := build(seq)
	if err != nil {
		return 0, fmt.Errorf("build record %d: %w", seq, err)
	}
	e := Entry{Seq: seq, Kind: kind, Data: data}
	if e.encodedLen() > maxBody {
		return 0, fmt.Errorf("append: record of %d bytes too large", e.encodedLen())
	}
	act := o.segs[len(o.segs)-1]
	if act.size >= o.opts.SegmentBytes || (act.live == 0 && act.size > 0 && o.total+e.encodedLen() > o.opts.MaxBytes) {
		if err := o.rotate(); err != nil {
			return 0, err
		}
		act = o.segs[len(o.segs)-1]
	}
	if o.total+e.encodedLen() > o.opts.MaxBytes {
		return 0, fmt.Errorf("%w: %d bytes held, limit %d", ErrFull, o.total, o.opts.MaxBytes)
	}
	o.buf = appendRecord(o.buf[:0], e)
	if _, err := o.active.Write(o.buf); err != nil {
		o.undo(act)
		return 0, fmt.Errorf("write record %d: %w", seq, err)
	}
	if err := o.active.Sync(); err != nil {
		o.undo(act)
		return 0, fmt.Errorf("sync record %d: %w", seq, err)
	}
	act.size += int64(len(o.buf))
	act.last = seq
	act.live++
	o.total += int64(len(o.buf))
	o.next++
	o.pending = append(o.pending, e)
	return seq, nil
}

// undo cuts a partly written record off the active segment, so the next
// Append does not write after garbage.
func (o *Outbox) undo(act *segment) {
	if err := o.active.Truncate(act.size); err != nil {
		o.log.Error("outbox: cannot cut failed write; recovery will", "err", err)
	}
}

// rotate starts a new active segment, named after the next seq.
func (o *Outbox) rotate() error {
	s := &segment{first: o.next, last: o.next - 1}
	f, err := os.OpenFile(s.path(o.dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	// The new name must be durable before the old segment can go: it is
	// what remembers the sequence counter.
	if err := syncDir(o.dir); err != nil {
		_ = f.Close()
		return err
	}
	old := o.segs[len(o.segs)-1]
	_ = o.active.Close()
	o.active = f
	o.segs = append(o.segs, s)
	if old.live == 0 {
		return o.removeSegment(old)
	}
	return nil
}

// removeSegment deletes a fully acknowledged, inactive segment.
func (o *Outbox) removeSegment(s *segment) error {
	if err := os.Remove(s.path(o.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove segment: %w", err)
	}
	o.segs = slices.DeleteFunc(o.segs, func(x *segment) bool { return x == s })
	o.total -= s.size
	for seq := s.first; seq <= s.last; seq++ {
		delete(o.acked, seq)
	}
	return nil
}

// Pending returns up to max unacknowledged records, oldest first. The
// returned Data must not be modified.
func (o *Outbox) Pending(max int) []Entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.trim()
	var out []Entry
	for _, e := range o.pending {
		if len(out) >= max {
			break
		}
		if !o.acked[e.Seq] {
			out = append(out, e)
		}
	}
	return out
}

// trim drops acknowledged records from the front of pending.
func (o *Outbox) trim() {
	i := 0
	for i < len(o.pending) && o.acked[o.pending[i].Seq] {
		i++
	}
	if i > 0 {
		o.pending = slices.Delete(o.pending, 0, i)
	}
}

// Ack marks seq as published. Acking an unknown or already acknowledged seq
// does nothing.
func (o *Outbox) Ack(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	idx := sort.Search(len(o.segs), func(i int) bool { return o.segs[i].last >= seq })
	if idx == len(o.segs) || seq < o.segs[idx].first || o.acked[seq] {
		return nil
	}
	s := o.segs[idx]
	// Only records still pending can be acked.
	p := sort.Search(len(o.pending), func(i int) bool { return o.pending[i].Seq >= seq })
	if p == len(o.pending) || o.pending[p].Seq != seq {
		return nil
	}
	var rec [ackLen]byte
	if _, err := o.acks.Write(appendAck(rec[:0], seq)); err != nil {
		return fmt.Errorf("write ack %d: %w", seq, err)
	}
	o.ackSize += ackLen
	o.acked[seq] = true
	s.live--
	o.trim()
	if s.live == 0 && s != o.segs[len(o.segs)-1] {
		if err := o.removeSegment(s); err != nil {
			return err
		}
	}
	if o.ackSize > ackCompactBytes && int64(len(o.acked))*ackLen < o.ackSize/2 {
		return o.rewriteAcks()
	}
	return nil
}

// Len returns the number of unacknowledged records.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.segs {
		n += s.live
	}
	return n
}

// Bytes returns the bytes held on disk by segments.
func (o *Outbox) Bytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// NextSeq returns the sequence number the next Append will use.
func (o *Outbox) NextSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next
}

// Close closes the files. Appended records are already durable.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	return o.closeFiles()
}

func (o *Outbox) closeFiles() error {
	var errs []error
	if o.active != nil {
		errs = append(errs, o.active.Close())
	}
	if o.acks != nil {
		errs = append(errs, o.acks.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close outbox: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
