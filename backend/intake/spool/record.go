package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// On disk a segment is a header followed by records:
//
//	header: magic "SEMKOSP1" | created unix ns (8 bytes, little endian)
//	record: length (4) | CRC32C of length and payload (4) | payload
//
// The CRC covers the length bytes too, so a torn or zero-filled tail (what
// a power cut leaves behind) never decodes as a record.
const (
	segMagic     = "SEMKOSP1"
	segHeaderLen = 16
	frameHeader  = 8
)

// MaxRecordBytes bounds one record's payload. The decoder treats a larger
// length as corruption, so a damaged length field cannot make it allocate
// gigabytes.
const MaxRecordBytes = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoder errors. Both mean "the valid data ends here".
var (
	errShort   = errors.New("truncated record")
	errCorrupt = errors.New("corrupt record")
)

// appendFrame appends the framed payload to dst.
func appendFrame(dst, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameSize is the on-disk size of a record with n payload bytes.
func frameSize(n int) int64 { return int64(frameHeader + n) }

// readFrame reads the next record from r into a new slice. It returns
// io.EOF at a clean end, errShort when r ends inside a record and
// errCorrupt when the record cannot be valid.
func readFrame(r *bufio.Reader) (payload []byte, err error) {
	h, err := r.Peek(frameHeader)
	if err != nil {
		if len(h) == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, errShort
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	if n > MaxRecordBytes {
		return nil, errCorrupt
	}
	want := binary.LittleEndian.Uint32(h[4:8])
	crc := crc32.Update(0, castagnoli, h[0:4])
	if _, err := r.Discard(frameHeader); err != nil {
		return nil, errShort
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, errShort
	}
	if crc32.Update(crc, castagnoli, payload) != want {
		return nil, errCorrupt
	}
	return payload, nil
}

// peekFrameLen returns the payload length of the next record without
// consuming it; ok is false at the end of r or on a damaged header.
func peekFrameLen(r *bufio.Reader) (n int, ok bool) {
	h, err := r.Peek(frameHeader)
	if err != nil {
		return 0, false
	}
	return int(binary.LittleEndian.Uint32(h[0:4])), true
}
