package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/semko/semko/protocol"
)

// On disk, a segment is a sequence of records:
//
//	length uint32 BE | crc32c uint32 BE | body
//	body = seq uint64 BE | kind length uint8 | kind | data
//
// The CRC covers the body, so a record torn by a power cut (short, or with
// garbage where the write stopped) is recognised and cut off on recovery.

const (
	headerLen = 8
	// maxBody bounds one record: far above protocol.MaxPayload, so a length
	// field read from garbage cannot make recovery allocate gigabytes.
	maxBody = 1 << 20
	// minBody is a seq and an empty kind.
	minBody = 8 + 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn means the bytes end inside a record: the tail of the last segment
// after a crash. errCorrupt means the bytes cannot be a record at all.
var (
	errTorn    = errors.New("torn record")
	errCorrupt = errors.New("corrupt record")
)

// Entry is one record of the outbox: what was appended, with its sequence
// number.
type Entry struct {
	Seq  uint64
	Kind protocol.Kind
	Data []byte
}

func (e Entry) encodedLen() int64 { return int64(headerLen + minBody + len(e.Kind) + len(e.Data)) }

// appendRecord encodes e onto dst.
func appendRecord(dst []byte, e Entry) []byte {
	bodyLen := minBody + len(e.Kind) + len(e.Data)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, 0) // CRC, filled below
	dst = binary.BigEndian.AppendUint64(dst, e.Seq)
	dst = append(dst, byte(len(e.Kind)))
	dst = append(dst, e.Kind...)
	dst = append(dst, e.Data...)
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+headerLen:], castagnoli))
	return dst
}

// decodeRecord decodes the record at the start of b and returns it with
// the number of bytes it took. The entry's Data aliases b.
func decodeRecord(b []byte) (Entry, int, error) {
	if len(b) < headerLen {
		return Entry{}, 0, errTorn
	}
	bodyLen := int(binary.BigEndian.Uint32(b))
	if bodyLen < minBody || bodyLen > maxBody {
		return Entry{}, 0, fmt.Errorf("%w: body length %d", errCorrupt, bodyLen)
	}
	if len(b) < headerLen+bodyLen {
		return Entry{}, 0, errTorn
	}
	body := b[headerLen : headerLen+bodyLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return Entry{}, 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	kindLen := int(body[8])
	if minBody+kindLen > bodyLen {
		return Entry{}, 0, fmt.Errorf("%w: kind length %d", errCorrupt, kindLen)
	}
	e := Entry{
		Seq:  binary.BigEndian.Uint64(body),
		Kind: protocol.Kind(body[minBody : minBody+kindLen]),
		Data: body[minBody+kindLen:],
	}
	if e.Seq == 0 {
		return Entry{}, 0, fmt.Errorf("%w: seq 0", errCorrupt)
	}
	return e, headerLen + bodyLen, nil
}

// An ack record is seq uint64 BE | crc32c of those 8 bytes.
const ackLen = 12

func appendAck(dst []byte, seq uint64) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func decodeAck(b []byte) (uint64, bool) {
	if len(b) < ackLen || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
