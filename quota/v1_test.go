package quota

import "encoding/binary"

// encode is the version 1 writer, as the package had it before the minute
// keys: tests use it to write data directories in the old format.
//
// It returns the record for the buckets after cutoff, or nil if there are
// none.
func (w *window) encode(cutoff int64) []byte {
	i := 0
	for i < len(w.b) && w.b[i].minute <= cutoff {
		i++
	}
	if i == len(w.b) {
		return nil
	}
	buf := make([]byte, 0, 1+(len(w.b)-i)*2*binary.MaxVarintLen32)
	buf = append(buf, formatVersion)
	for j, b := range w.b[i:] {
		if j == 0 {
			buf = binary.AppendVarint(buf, b.minute)
		} else {
			buf = binary.AppendUvarint(buf, uint64(b.minute-w.b[i+j-1].minute))
		}
		buf = binary.AppendUvarint(buf, uint64(b.n))
	}
	return buf
}
