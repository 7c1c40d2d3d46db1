// Package spool is a durable FIFO of opaque records on the local disk: the
// backend appends each accepted message (and fsyncs it) before the device
// gets its PUBACK, and the InfluxDB writer drains it later, committing a
// cursor only after InfluxDB has taken a batch.
//
// Records live in segment files named after the sequence number of their
// first record; a small cursor file holds the committed position. After a
// crash, Open truncates a torn tail and hands out again everything after the
// cursor: records are delivered at least once, never skipped.
//
// One process uses a directory at a time (a lock file enforces it). Append
// is safe for any number of goroutines; Read, Rewind and Commit are meant
// for one consumer.
package spool

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
	"sync/atomic"
	"time"
)

// Errors returned by the spool. Match them with errors.Is.
var (
	// ErrFull means the records would take the pending data past
	// Options.MaxBytes. Nothing was appended: the caller must not
	// acknowledge the records upstream, so their sender keeps them.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("spool closed")
	// ErrTooLarge is returned by Append for a record over MaxRecordBytes.
	ErrTooLarge = errors.New("record too large")
	// ErrLocked means another spool (usually another process) has the
	// directory open.
	ErrLocked = errors.New("spool directory in use")
	// ErrFailed means a write or fsync failed: the disk's state is no
	// longer known, so the spool refuses further appends until reopened.
	ErrFailed = errors.New("spool failed")
	// ErrPosition is returned by Commit for a position Read never gave out.
	ErrPosition = errors.New("unknown spool position")
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 64 << 20
)

// Options configures Open.
type Options struct {
	// MaxBytes bounds the pending (appended, uncommitted) data on disk,
	// framing included. Default DefaultMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	// Committed data is freed a whole segment at a time. Default
	// DefaultSegmentBytes.
	SegmentBytes int64
	// Logger receives recovery reports and failures. Default: discard.
	Logger *slog.Logger
}

// Position identifies a record. Positions of later records compare greater
// by Seq; only positions returned by Read may be passed to Commit.
type Position struct {
	// Seq numbers records from 1, in append order, across restarts.
	Seq uint64
	seg uint64 // id (first Seq) of the record's segment
	end int64  // offset just past the record in its segment file
}

// Record is one record handed out by Read.
type Record struct {
	ID   Position
	Data []byte
}

// segment is one segment file. size and count cover durable data only.
type segment struct {
	id      uint64 // Seq of its first record, and its file name
	path    string
	created time.Time
	size    int64 // bytes, header included
	count   uint64
}

// mark says: records from seq on were appended at or after at. A few of
// them give the age of the oldest pending record without a timestamp per
// record.
type mark struct {
	seq uint64
	at  time.Time
}

const maxMarks = 1024

// appendReq is one Append call waiting for the flusher.
type appendReq struct {
	frames []byte
	n      int
	done   chan error // capacity 1: the flusher never blocks on it
}

// Spool is a durable FIFO. Create it with Open.
type Spool struct {
	dir    string
	opts   Options
	log    *slog.Logger
	lock   io.Closer
	notify chan struct{}
	kick   chan struct{} // wakes the flusher; capacity 1
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the flusher has exited
	wf     *os.File      // active segment, written by the flusher only

	mu          sync.Mutex
	segs        []*segment // oldest first; the last one takes appends
	nextSeq     uint64     // Seq of the next durable record
	committed   Position   // durable cursor; reading resumes at (seg, end)
	queue       []*appendReq
	queuedBytes int64
	pendingRecs int64
	pendingSize int64
	marks       []mark
	closed      bool
	failed      error
	full        bool
	appended    uint64
	refused     uint64
	skipped     uint64
	syncs       uint64

	commitMu sync.Mutex // serialises cursor file writes

	readMu sync.Mutex
	rd     Position // next record to hand out: Seq-1 handed out so far, starts at (seg, end)
	rf     *os.File // open segment of rd, or nil
	rfID   uint64
	br     *bufio.Reader

	latency latencyHistogram
}

// Open opens (creating if needed) the spool in dir and recovers it: a torn
// record at the end of the last segment (a power cut during a write) is
// truncated, the committed cursor is restored, and segments wholly before it
// are deleted.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{
		dir: dir, opts: opts, log: opts.Logger.With("spool", dir), lock: lock,
		notify: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		br: bufio.NewReaderSize(nil, 256<<10),
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	go s.flushLoop() // owned by s: Close stops it and waits
	return s, nil
}

func segName(id uint64) string { return fmt.Sprintf("%020d.seg", id) }

// recover rebuilds the in-memory state from the directory.
func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return fmt.Errorf("unexpected file %s", e.Name())
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)

	cur, found, err := readCursor(s.dir)
	if err != nil {
		// Never skip: with no trustworthy cursor, everything is handed out
		// again, and InfluxDB overwrites what it already has.
		s.log.Error("spool cursor unreadable, replaying every segment", "err", err)
		found = false
	}
	for i, id := range ids {
		last := i == len(ids)-1
		seg, err := s.scanSegment(id, last)
		if err != nil {
			return err
		}
		if seg != nil {
			s.segs = append(s.segs, seg)
		}
	}
	if !found {
		first := uint64(1)
		if len(s.segs) > 0 {
			first = s.segs[0].id
		}
		cur = Position{Seq: first - 1, seg: first, end: segHeaderLen}
	}
	s.committed = cur
	s.nextSeq = cur.Seq + 1
	if n := len(s.segs); n > 0 {
		s.nextSeq = max(s.nextSeq, s.segs[n-1].id+s.segs[n-1].count)
	}
	// Drop segments the cursor has passed; keep the last for appends.
	for len(s.segs) > 1 && s.segs[0].id+s.segs[0].count <= cur.Seq+1 {
		if err := os.Remove(s.segs[0].path); err != nil {
			return err
		}
		s.segs = s.segs[1:]
	}
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].size >= s.opts.SegmentBytes {
		if err := s.createSegment(time.Now()); err != nil {
			return err
		}
	}
	active := s.segs[len(s.segs)-1]
	if s.wf == nil {
		if s.wf, err = os.OpenFile(active.path, os.O_WRONLY, 0); err != nil {
			return err
		}
	}
	for _, seg := range s.segs {
		s.marks = append(s.marks, mark{seq: seg.id, at: seg.created})
	}
	s.recount()
	s.rd = s.committed
	if s.pendingRecs > 0 {
		s.log.Info("spool recovered", "pending_records", s.pendingRecs, "pending_bytes", s.pendingSize,
			"segments", len(s.segs), "committed_seq", s.committed.Seq)
	}
	return nil
}

// scanSegment validates one segment file and truncates it after its last
// valid record. It returns nil for a file with no usable header (torn while
// being created), which it deletes.
func (s *Spool) scanSegment(id uint64, last bool) (*segment, error) {
	path := filepath.Join(s.dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var hdr [segHeaderLen]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[:8]) != segMagic {
		if fi.Size() < segHeaderLen {
			s.log.Warn("removing spool segment torn during creation", "file", path, "bytes", fi.Size())
			return nil, os.Remove(path)
		}
		return nil, fmt.Errorf("%s is not a spool segment", path)
	}
	seg := &segment{id: id, path: path, created: time.Unix(0, int64(le64(hdr[8:16]))), size: segHeaderLen}
	br := bufio.NewReaderSize(f, 256<<10)
	for {
		p, err := readFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				lost := fi.Size() - seg.size
				if last && errors.Is(err, errShort) {
					s.log.Warn("truncating torn record at the end of the spool", "file", path, "offset", seg.size, "bytes", lost)
				} else {
					// Not what a power cut does: the records after this
					// point are unreadable. Say so loudly.
					s.log.Error("spool segment corrupt, discarding its rest", "file", path, "offset", seg.size, "bytes", lost, "err", err)
				}
				if err := f.Truncate(seg.size); err != nil {
					return nil, err
				}
				if err := f.Sync(); err != nil {
					return nil, err
				}
			}
			break
		}
		seg.size += frameSize(len(p))
		seg.count++
	}
	return seg, nil
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func put64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// createSegment starts a new segment whose first record will be s.nextSeq,
// durably (file and directory entry), and makes it the active one.
func (s *Spool) createSegment(now time.Time) error {
	id := s.nextSeq
	path := filepath.Join(s.dir, segName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	var hdr [segHeaderLen]byte
	copy(hdr[:], segMagic)
	put64(hdr[8:], uint64(now.UnixNano()))
	if _, err := f.Write(hdr[:]); err != nil {
		f.Close()
		return fmt.Errorf("create segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("create segment: %w", err)
	}
	if s.wf != nil {
		s.wf.Close()
	}
	s.wf = f
	seg := &segment{id: id, path: path, created: now, size: segHeaderLen}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recount recomputes the pending totals from the segments. Callers hold
// s.mu (or own s exclusively).
func (s *Spool) recount() {
	var recs, size int64
	c := s.committed
	for _, seg := range s.segs {
		switch {
		case seg.id+seg.count <= c.Seq+1:
			// wholly committed
		case seg.id == c.seg:
			recs += int64(seg.id + seg.count - 1 - c.Seq)
			size += seg.size - c.end
		default:
			recs += int64(seg.count)
			size += seg.size - segHeaderLen
		}
	}
	s.pendingRecs, s.pendingSize = recs, size
	// Forget marks of committed records, keeping the one that covers the
	// oldest pending record.
	i := 0
	for i+1 < len(s.marks) && s.marks[i+1].seq <= c.Seq+1 {
		i++
	}
	s.marks = s.marks[i:]
}

// Append adds records and returns once they are on disk (fsynced). Calls
// from many goroutines share one write and fsync (group commit), so
// throughput grows with concurrency. With ErrFull (or any error before the
// wait) nothing was appended. If ctx ends while the write is under way,
// Append returns ctx.Err() though the records may still land: treat them as
// not acknowledged; a resend is harmless downstream.
func (s *Spool) Append(ctx context.Context, recs ...[]byte) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	var size int64
	for _, r := range recs {
		if len(r) > MaxRecordBytes {
			return fmt.Errorf("append: %w: %d bytes, limit %d", ErrTooLarge, len(r), MaxRecordBytes)
		}
		size += frameSize(len(r))
	}
	frames := make([]byte, 0, size)
	for _, r := range recs {
		frames = appendFrame(frames, r)
	}
	req := &appendReq{frames: frames, n: len(recs), done: make(chan error, 1)}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.failed != nil:
		err := s.failed
		s.mu.Unlock()
		return err
	case s.pendingSize+s.queuedBytes+size > s.opts.MaxBytes:
		s.full = true
		s.refused += uint64(len(recs))
		s.mu.Unlock()
		return ErrFull
	}
	s.queue = append(s.queue, req)
	s.queuedBytes += size
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a wake-up is already pending; it will see our request
	}

	select {
	case err := <-req.done:
		if err == nil {
			s.latency.observe(time.Since(start))
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop writes queued appends, one batch per round: whatever queued up
// while the previous fsync ran goes into the next one.
func (s *Spool) flushLoop() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			// Close has refused new appends; finish the ones accepted.
			s.mu.Lock()
			batch := s.queue
			s.queue = nil
			s.mu.Unlock()
			if len(batch) > 0 {
				s.writeBatch(batch)
			}
			return
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			s.writeBatch(batch)
		}
	}
}

// writeBatch writes and fsyncs a batch of requests, starting new segments
// as needed, publishes the records and answers every request.
func (s *Spool) writeBatch(batch []*appendReq) {
	now := time.Now()
	var firstErr error
	var buf []byte
	var bufRecs uint64
	var waiting []*appendReq // requests in buf

	s.mu.Lock()
	active := s.segs[len(s.segs)-1]
	size := active.size
	if s.failed != nil {
		firstErr = s.failed
	}
	s.mu.Unlock()

	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := s.wf.WriteAt(buf, size); err != nil {
			// The tail may hold part of buf: cut it off so the next
			// write starts clean, then let these requests fail.
			if terr := s.wf.Truncate(size); terr != nil {
				return s.fail(fmt.Errorf("write segment: %w (truncate: %v)", err, terr))
			}
			return fmt.Errorf("write segment: %w", err)
		}
		if err := s.wf.Sync(); err != nil {
			// After a failed fsync the page cache may hold data the disk
			// does not: nothing written from now on can be trusted.
			return s.fail(fmt.Errorf("fsync segment: %w", err))
		}
		size += int64(len(buf))
		s.publish(active, int64(len(buf)), bufRecs, now)
		buf, bufRecs = buf[:0], 0
		return nil
	}
	answer := func(reqs []*appendReq, err error) {
		for _, r := range reqs {
			r.done <- err
		}
	}
	i := 0
	for ; i < len(batch) && firstErr == nil; i++ {
		req := batch[i]
		if size+int64(len(buf)) > segHeaderLen && size+int64(len(buf))+int64(len(req.frames)) > s.opts.SegmentBytes {
			if err := flush(); err != nil {
				firstErr = err
				break
			}
			answer(waiting, nil)
			waiting = waiting[:0]
			if err := s.createSegment(now); err != nil {
				firstErr = s.fail(err)
				break
			}
			s.mu.Lock()
			active = s.segs[len(s.segs)-1]
			s.mu.Unlock()
			size = active.size
		}
		buf = append(buf, req.frames...)
		bufRecs += uint64(req.n)
		waiting = append(waiting, req)
	}
	if firstErr == nil {
		firstErr = flush()
	}
	if firstErr != nil {
		// publish took the written requests off queuedBytes; release the
		// rest before anyone hears of the failure.
		var unwritten int64
		for _, r := range waiting {
			unwritten += int64(len(r.frames))
		}
		for _, r := range batch[i:] {
			unwritten += int64(len(r.frames))
		}
		s.mu.Lock()
		s.queuedBytes -= unwritten
		s.mu.Unlock()
	}
	answer(waiting, firstErr)
	answer(batch[i:], firstErr) // not reached because of an error; empty otherwise
}

// fail puts the spool in the failed state and returns the error to report.
func (s *Spool) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	s.log.Error("spool failed: appends refused until restart", "err", err)
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	s.mu.Unlock()
	return err
}

// publish makes n durable bytes holding recs records visible to readers.
func (s *Spool) publish(seg *segment, n int64, recs uint64, now time.Time) {
	s.mu.Lock()
	if len(s.marks) == 0 || now.Sub(s.marks[len(s.marks)-1].at) >= time.Second || s.pendingRecs == 0 {
		s.addMark(mark{seq: s.nextSeq, at: now})
	}
	seg.size += n
	seg.count += recs
	s.nextSeq += recs
	s.pendingRecs += int64(recs)
	s.pendingSize += n
	// The bytes move from queued to pending in one step: an Append made
	// right after its predecessor returned must not count them twice and
	// refuse with ErrFull below the limit.
	s.queuedBytes -= n
	s.appended += recs
	s.syncs++
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// addMark appends m, thinning the marks when there are too many: ages get
// coarser (never younger than true) but memory stays bounded.
func (s *Spool) addMark(m mark) {
	if len(s.marks) >= maxMarks {
		kept := s.marks[:1]
		for i := 2; i < len(s.marks); i += 2 {
			kept = append(kept, s.marks[i])
		}
		s.marks = kept
	}
	s.marks = append(s.marks, m)
}

// Notify returns a channel that receives a value after appends, so a
// consumer can wait for data instead of polling. It has capacity 1 and is
// never closed; a value may be stale (the data already read).
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Read returns up to maxRecords of the oldest records not yet handed out
// (since Open or the last Rewind), in append order, and at most maxBytes of
// payload, except that one record is returned even if it is larger. It does
// not block: with nothing new it returns an empty slice.
func (s *Spool) Read(maxRecords, maxBytes int) ([]Record, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var out []Record
	total := 0
	for len(out) < maxRecords {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].id >= s.rd.seg })
		if i == len(s.segs) {
			s.mu.Unlock()
			break
		}
		seg := s.segs[i]
		if seg.id != s.rd.seg {
			// Our segment is gone (committed) or was never there.
			s.rd = Position{Seq: seg.id - 1, seg: seg.id, end: segHeaderLen}
		}
		limit, path := seg.size, seg.path
		var next *segment
		if i+1 < len(s.segs) {
			next = s.segs[i+1]
		}
		s.mu.Unlock()

		if s.rd.end >= limit {
			if next == nil {
				break
			}
			s.rd = Position{Seq: next.id - 1, seg: next.id, end: segHeaderLen}
			continue
		}
		if s.rf == nil || s.rfID != seg.id {
			s.closeReader()
			f, err := os.Open(path)
			if err != nil {
				return out, fmt.Errorf("read spool: %w", err)
			}
			s.rf, s.rfID = f, seg.id
		}
		s.br.Reset(io.NewSectionReader(s.rf, s.rd.end, limit-s.rd.end))
		for len(out) < maxRecords {
			n, ok := peekFrameLen(s.br)
			if !ok || (len(out) > 0 && total+n > maxBytes) {
				break
			}
			p, err := readFrame(s.br)
			if err != nil {
				// Data we fsynced and checked at Open went bad since:
				// it cannot be read, so move on rather than stall forever.
				s.log.Error("spool segment unreadable, skipping its rest", "file", path, "offset", s.rd.end, "err", err)
				s.mu.Lock()
				s.skipped++
				s.mu.Unlock()
				s.rd.end = limit
				break
			}
			s.rd.Seq++
			s.rd.end += frameSize(len(p))
			total += len(p)
			out = append(out, Record{ID: Position{Seq: s.rd.Seq, seg: seg.id, end: s.rd.end}, Data: p})
		}
		if len(out) > 0 && total >= maxBytes {
			break
		}
	}
	return out, nil
}

func (s *Spool) closeReader() {
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
}

// Rewind makes Read hand out again every record after the committed cursor,
// for a consumer whose delivery failed.
func (s *Spool) Rewind() {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	s.rd = s.committed
	s.mu.Unlock()
}

// Commit durably records that every record up to and including upTo has
// been delivered, and deletes segments that hold only committed records.
// Committing a position at or before the cursor does nothing.
func (s *Spool) Commit(upTo Position) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if upTo.Seq <= s.committed.Seq {
		s.mu.Unlock()
		return nil
	}
	var seg *segment
	for _, sg := range s.segs {
		if sg.id == upTo.seg {
			seg = sg
		}
	}
	if seg == nil || upTo.Seq >= s.nextSeq || upTo.Seq < seg.id || upTo.Seq >= seg.id+seg.count ||
		upTo.end <= segHeaderLen || upTo.end > seg.size {
		s.mu.Unlock()
		return fmt.Errorf("commit %d: %w", upTo.Seq, ErrPosition)
	}
	s.mu.Unlock()

	if err := writeCursor(s.dir, upTo); err != nil {
		return fmt.Errorf("commit %d: %w", upTo.Seq, err)
	}

	s.mu.Lock()
	s.committed = upTo
	var drop []*segment
	for len(s.segs) > 1 && s.segs[0].id+s.segs[0].count <= upTo.Seq+1 {
		drop = append(drop, s.segs[0])
		s.segs = s.segs[1:]
	}
	s.recount()
	s.full = false
	s.mu.Unlock()

	// A reader behind the cursor (a consumer that committed without
	// reading) moves up to it.
	s.readMu.Lock()
	if s.rd.Seq < upTo.Seq {
		s.rd = upTo
	}
	s.readMu.Unlock()

	for _, seg := range drop {
		// If this fails, or we crash first, Open removes it later: the
		// cursor already says it is committed.
		if err := os.Remove(seg.path); err != nil {
			s.log.Warn("remove committed segment", "file", seg.path, "err", err)
		}
	}
	return nil
}

// Stats is a snapshot of the spool's state.
type Stats struct {
	PendingRecords int64     // appended, not committed
	PendingBytes   int64     // their size on disk
	MaxBytes       int64     // the limit on PendingBytes
	Segments       int       // segment files
	Full           bool      // an Append was refused for space since the last Commit
	OldestPending  time.Time // when the oldest pending record was appended (at most a second or so earlier); zero when none
	Committed      uint64    // Seq of the last committed record
	Appended       uint64    // records appended since Open
	Refused        uint64    // records refused with ErrFull since Open
	Syncs          uint64    // fsyncs of appended data since Open: Appended/Syncs is the group-commit factor
	Skipped        uint64    // segments whose unreadable rest Read skipped (disk corruption)
	AppendLatency  Histogram // successful Append calls
	Failed         error     // non-nil once the spool has failed (see ErrFailed)
}

// Stats returns a snapshot of the spool's state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		PendingRecords: s.pendingRecs, PendingBytes: s.pendingSize, MaxBytes: s.opts.MaxBytes,
		Segments: len(s.segs), Full: s.full, Committed: s.committed.Seq,
		Appended: s.appended, Refused: s.refused, Syncs: s.syncs, Skipped: s.skipped, Failed: s.failed,
	}
	if s.pendingRecs > 0 && len(s.marks) > 0 {
		st.OldestPending = s.marks[0].at
	}
	st.AppendLatency = s.latency.snapshot()
	return st
}

// Close finishes the appends already accepted, then releases the files.
// Records not committed stay on disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.readMu.Lock()
	s.closeReader()
	s.readMu.Unlock()
	err := s.closeFiles()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

func (s *Spool) closeFiles() error {
	if s.wf == nil {
		return nil
	}
	err := s.wf.Close()
	s.wf = nil
	return err
}

// Histogram is a cumulative latency histogram, shaped like Prometheus's.
type Histogram struct {
	Bounds []float64 // upper bounds, seconds
	Counts []uint64  // Counts[i]: observations <= Bounds[i]
	Count  uint64
	Sum    float64 // seconds
}

var latencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// latencyHistogram counts without locks: Append is the hot path.
type latencyHistogram struct {
	buckets [13]atomic.Uint64 // one per bound, then +Inf
	sumNS   atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	sec := d.Seconds()
	i := sort.SearchFloat64s(latencyBounds, sec)
	h.buckets[i].Add(1)
	h.sumNS.Add(uint64(d))
}

func (h *latencyHistogram) snapshot() Histogram {
	out := Histogram{Bounds: latencyBounds, Counts: make([]uint64, len(latencyBounds))}
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		if i < len(latencyBounds) {
			out.Counts[i] = cum
		}
	}
	out.Count = cum
	out.Sum = time.Duration(h.sumNS.Load()).Seconds()
	return out
}
