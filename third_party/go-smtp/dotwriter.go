// Copyright 2010 The Go Authors (net/textproto's dotWriter, which this
// file adapts). Use of this source code is governed by a BSD-style license
// that can be found in the LICENSE-go file.

package smtp

import (
	"bufio"
	"bytes"
)

// dotWriter is net/textproto's DotWriter with one change (outbound's
// patch): in the middle of a line it writes the run of bytes up to the
// next CR or LF in one call instead of byte by byte. What it writes is the
// same: leading dots doubled, a bare LF written as CRLF, and ".\r\n" (after
// a CRLF if the data did not end with one) at Close.
type dotWriter struct {
	w     *bufio.Writer
	state int
}

const (
	wstateBegin     = iota // initial state; must be zero
	wstateBeginLine        // beginning of line
	wstateCR               // wrote \r (possibly at end of line)
	wstateData             // writing data in middle of line
)

func (d *dotWriter) Write(b []byte) (n int, err error) {
	bw := d.w
	for n < len(b) {
		if d.state == wstateData {
			run := b[n:]
			if i := bytes.IndexByte(run, '\n'); i >= 0 {
				run = run[:i]
			}
			if i := bytes.IndexByte(run, '\r'); i >= 0 {
				run = run[:i]
			}
			if len(run) > 0 {
				k, err := bw.Write(run)
				n += k
				if err != nil {
					return n, err
				}
				continue
			}
		}
		c := b[n]
		switch d.state {
		case wstateBegin, wstateBeginLine:
			d.state = wstateData
			if c == '.' {
				// escape leading dot
				bw.WriteByte('.')
			}
			fallthrough

		case wstateData:
			if c == '\r' {
				d.state = wstateCR
			}
			if c == '\n' {
				bw.WriteByte('\r')
				d.state = wstateBeginLine
			}

		case wstateCR:
			d.state = wstateData
			if c == '\n' {
				d.state = wstateBeginLine
			}
		}
		if err = bw.WriteByte(c); err != nil {
			break
		}
		n++
	}
	return
}

func (d *dotWriter) Close() error {
	bw := d.w
	switch d.state {
	default:
		bw.WriteByte('\r')
		fallthrough
	case wstateCR:
		bw.WriteByte('\n')
		fallthrough
	case wstateBeginLine:
		bw.Write([]byte(".\r\n"))
	}
	return bw.Flush()
}
